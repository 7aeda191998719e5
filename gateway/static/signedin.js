// What the signed-in screens (the operator console, the call-center screen) share, served
// at /assets/signedin.js. Plain script, no build step.
//
// ``api``: JSON in and out, the session's CSRF token on every change, an error answer as
// {ok: false, status, error: {code, message, ...}} (the gateway's own error body, else
// one made here), and a 401 outside the sign-in route reported to ``onSignedOut(error)``.
// ``show``: the session's part of the page (elements ``who``, ``sign-out``,
// ``signin-section`` and ``workId``) for a session, or for none (null).
"use strict";
function signedInApi(signinPath, workId, onSignedOut) {
  const auth = { csrf: null };  // the session's CSRF token, set at sign-in
  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth.csrf && method !== "GET") headers["X-CSRF-Token"] = auth.csrf;
    let response;
    try {
      response = await fetch(path, {
        method, headers, credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      return { ok: false, status: 0, error: { code: "unreachable", message: "The gateway did not answer. Check the connection and try again." } };
    }
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json().catch(() => null) : null;
    if (response.ok) return { ok: true, status: response.status, data, response };
    const error = (data && data.error) || { code: "http_error", message: "The gateway answered " + response.status + "." };
    if (response.status === 401 && path !== signinPath) onSignedOut(error);
    return { ok: false, status: response.status, error };
  }
  function show(session, whoText) {
    const signedIn = session !== null;
    auth.csrf = signedIn ? session.csrf_token : null;
    document.getElementById("who").textContent = signedIn ? whoText : "";
    document.getElementById(workId).hidden = !signedIn;
    document.getElementById("sign-out").hidden = !signedIn;
    document.getElementById("signin-section").hidden = signedIn;
  }
  return { api, auth, show };
}
