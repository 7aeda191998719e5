// The operator console (served by the gateway at /operator/console.js). Plain script,
// no build step: it calls the gateway's operator API with the session cookie and the
// session's CSRF token, draws the charts with uPlot (served by the gateway too).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  let rooms = [];
  let selected = null;
  let events = null;
  const charts = {};

  // "key=value, ..." of an object (nested values as JSON)
  const brief = (v) => v === null || v === undefined ? "–"
    : Object.entries(v).map(([k, x]) => k + "=" + (typeof x === "object" ? JSON.stringify(x) : x)).join(", ");

  // what ``after`` changed of ``before`` ("unchanged" when nothing)
  function changes(before, after) {
    if (!before || !after) return brief(after);
    const changed = Object.fromEntries(Object.entries(after).filter(([k, v]) => before[k] !== v));
    return Object.keys(changed).length ? brief(changed) : "unchanged";
  }

  // ---- talking to the gateway (signedin.js) ---------------------------------------
  const { api, auth, show } = signedInApi(
    "/api/operator/session", "console-section", (error) => signedOut(error.message));

  function notice(text, kind) {
    $("notice").textContent = text || "";
    $("notice").className = kind || "";
  }

  const fmt = (v, digits) => v === null || v === undefined ? "–"
    : typeof v === "number" ? v.toLocaleString("en", { maximumFractionDigits: digits === undefined ? 1 : digits }) : String(v);

  function duration(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return Math.round(s) + " s";
    if (s < 3600) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  function cell(row, value, cls) {
    const td = document.createElement("td");
    td.textContent = value;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  // ---- signing in and out ------------------------------------------------------
  function signedIn(session) {
    show(session, "Signed in as " + session.who);
    startOverview();
    refreshSystem();
    refreshActions();
  }

  function signedOut(message) {
    if (events) { events.close(); events = null; }
    show(null);
    if (message) notice(message, "error");
  }

  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("signin-error").textContent = "";
    const name = $("signin-name").value.trim();
    const key = $("signin-key").value;
    if (!name || !key) {
      $("signin-error").textContent = "Give your name and the operator key.";
      return;
    }
    const r = await api("POST", "/api/operator/session", { name, key });
    $("signin-key").value = "";
    if (!r.ok) {
      $("signin-error").textContent = r.status === 403 ? "That is not the operator key." : r.error.message;
      return;
    }
    notice("");
    signedIn(r.data);
  });

  $("sign-out").addEventListener("click", async () => {
    const r = await api("DELETE", "/api/operator/session");
    signedOut(r.ok ? "" : r.error.message);
    notice(r.ok ? "Signed out." : r.error.message, r.ok ? "ok" : "error");
  });

  // ---- the live rooms overview -------------------------------------------------
  const MODES = { manual: "manual (the rate above)", auto: "automatic (no more bookers than pairs left)" };

  function startOverview() {
    if (events) events.close();
    events = new EventSource("/api/admin/overview/events");
    events.addEventListener("overview", (e) => {
      const overview = JSON.parse(e.data);
      rooms = overview.rooms;
      const modes = $("adm-mode");
      if (modes.options.length !== overview.admission_modes.length) {
        modes.replaceChildren(...overview.admission_modes.map((m) => new Option(MODES[m] || m, m)));
      }
      $("live").textContent = "· live, " + new Date().toLocaleTimeString("en-GB");
      drawRooms();
    });
    events.onerror = () => {
      $("live").textContent = "· reconnecting…";
      // a session that ended answers 401: EventSource gives up; ask why
      if (events && events.readyState === EventSource.CLOSED) {
        api("GET", "/api/operator/session").then((r) => {
          if (r.ok && !r.data.signed_in) signedOut(r.data.message);
        });
      }
    };
  }

  function drawRooms() {
    const body = $("rooms-body");
    body.replaceChildren();
    $("no-rooms").hidden = rooms.length > 0;
    for (const r of rooms) {
      const row = document.createElement("tr");
      const first = document.createElement("td");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = r.room;
      button.setAttribute("aria-label", "Show room " + r.room);
      button.addEventListener("click", () => selectRoom(r.room));
      first.appendChild(button);
      row.appendChild(first);
      cell(row, r.state + (r.sold_out ? " · sold out" : ""), "text state-" + r.state + (r.sold_out ? " soldout" : ""));
      cell(row, fmt(r.prequeue_size));
      cell(row, fmt(r.queue_depth)).dataset.field = "queue_depth";
      cell(row, fmt(r.rate_now_per_s) + " / " + fmt(r.measured_rate_per_s));
      cell(row, fmt(r.active) + " / " + fmt(r.max_active));
      cell(row, duration(r.wait_at_back_s));
      cell(row, fmt(r.pairs_left)).dataset.field = "pairs_left";
      cell(row, fmt(r.holds));
      cell(row, fmt(r.confirmations));
      cell(row, fmt(r.expiries));
      cell(row, fmt(r.waitlisted));
      row.dataset.room = r.room;
      body.appendChild(row);
    }
    const campaigns = [...new Set(rooms.map((r) => r.campaign))].sort();
    const select = $("campaign-select");
    if (select.options.length !== campaigns.length) {
      select.replaceChildren(...campaigns.map((c) => new Option(c, c)));
    }
    if (!selected && rooms.length) selectRoom(rooms[0].room);
    else if (selected) drawRoom();
  }

  const CARDS = [
    ["State", (r) => r.state + (r.sold_out ? ", sold out" : "")],
    ["In the pre-queue", (r) => fmt(r.prequeue_size)],
    ["Queue depth", (r) => fmt(r.queue_depth)],
    ["Admitted so far", (r) => fmt(r.admitted)],
    ["Admissions/s set now", (r) => fmt(r.rate_now_per_s, 2)],
    ["Admissions/s measured", (r) => fmt(r.measured_rate_per_s, 2)],
    ["Active / cap", (r) => fmt(r.active) + " / " + fmt(r.max_active)],
    ["Time active (mean)", (r) => duration(r.measured_dwell_s)],
    ["Wait at the back", (r) => duration(r.wait_at_back_s)],
    ["Pairs left", (r) => fmt(r.pairs_left)],
    ["Holds", (r) => fmt(r.holds)],
    ["Confirmations", (r) => fmt(r.confirmations)],
    ["Expiries", (r) => fmt(r.expiries)],
    ["Waitlist", (r) => fmt(r.waitlisted)],
    ["Mode / PoW bits", (r) => r.admission_mode + " / " + r.pow_difficulty],
  ];

  function drawRoom() {
    const r = rooms.find((x) => x.room === selected);
    if (!r) return;
    $("room-section").hidden = false;
    $("room-title").textContent = "Room " + r.room + " (campaign " + r.campaign + ")";
    const cards = $("room-cards");
    cards.replaceChildren();
    for (const [label, value] of CARDS) {
      const card = document.createElement("div");
      card.className = "card";
      const v = document.createElement("div");
      v.className = "v";
      v.textContent = value(r);
      const k = document.createElement("div");
      k.className = "k";
      k.textContent = label;
      card.append(v, k);
      cards.appendChild(card);
    }
    const pairs = $("room-pairs");
    pairs.replaceChildren();
    for (const [county, c] of Object.entries(r.counties || {})) {
      for (const [vaccine, n] of Object.entries(c.pairs_left_by_vaccine || { "all": c.pairs_left })) {
        const row = document.createElement("tr");
        cell(row, county);
        cell(row, vaccine, "text");
        cell(row, fmt(n));
        pairs.appendChild(row);
      }
    }
  }

  async function selectRoom(name) {
    const changed = selected !== name;
    selected = name;
    drawRoom();
    if (!changed) return;
    const r = rooms.find((x) => x.room === name);
    if (r) {
      $("adm-rate").value = r.rate_per_s;
      $("adm-cap").value = r.max_active;
      $("adm-ramp").value = r.ramp_s;
      $("adm-mode").value = r.admission_mode;
      $("adm-pow").value = r.pow_difficulty;
    }
    refreshMessage();
    refreshHistory();
  }

  // ---- charts of the last hour (the server keeps them) --------------------------
  const SERIES = [
    ["Queue depth", [["queue_depth", "people waiting", "#0b5cad"]]],
    ["Arrivals and admissions per second", [["arrivals_per_s", "arrivals/s", "#8a4b00"], ["admissions_per_s", "admissions/s", "#0a6b2d"]]],
    ["Holds and confirmations per minute", [["holds_per_min", "holds/min", "#a3161b"], ["confirmations_per_min", "confirmations/min", "#0a6b2d"]]],
    ["Pairs left", [["pairs_left", "pairs left", "#5b2a86"]]],
  ];

  async function refreshHistory() {
    if (!selected || !auth.csrf) return;
    const r = await api("GET", "/api/admin/rooms/" + encodeURIComponent(selected) + "/history");
    if (!r.ok) { notice("The charts could not be loaded: " + r.error.message, "error"); return; }
    if (typeof uPlot === "undefined") { notice("The chart library is missing on the gateway (run npm ci).", "error"); return; }
    const h = r.data;
    const box = $("charts");
    if (box.dataset.room !== selected) {
      box.replaceChildren();
      for (const key of Object.keys(charts)) delete charts[key];
      box.dataset.room = selected;
    }
    for (const [title, series] of SERIES) {
      const data = [h.t, ...series.map(([k]) => h[k])];
      if (charts[title]) { charts[title].setData(data); continue; }
      const holder = document.createElement("figure");
      holder.className = "chart";
      holder.setAttribute("aria-label", title + ", last hour");
      box.appendChild(holder);
      charts[title] = new uPlot({
        title, width: Math.max(260, Math.floor(holder.getBoundingClientRect().width) - 12), height: 180,
        series: [{}, ...series.map(([, label, stroke]) => ({ label, stroke, width: 2 }))],
        axes: [{}, { size: 55 }],
      }, data, holder);
    }
  }

  // ---- controls --------------------------------------------------------------
  const CONFIRM = {
    pause: "Pause admission for everyone waiting in this room?",
    close: "Close this room? Nobody can join or wait in it any more.",
  };

  async function act(method, path, body, done) {
    const r = await api(method, path, body);
    if (r.ok) notice(done, "ok");
    else notice(r.error.message, "error");
    refreshActions();
    return r;
  }

  document.querySelectorAll("[data-action]").forEach((button) => {
    button.addEventListener("click", async () => {
      const action = button.dataset.action;
      if (!selected) return;
      if (CONFIRM[action] && !window.confirm(CONFIRM[action])) return;
      await act("POST", "/api/admin/rooms/" + encodeURIComponent(selected) + "/" + action, undefined,
        "Room " + selected + ": " + action + " done.");
    });
  });

  $("admission-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {};
    for (const [field, id, integer] of [["rate_per_s", "adm-rate", false], ["max_active", "adm-cap", true], ["ramp_s", "adm-ramp", true], ["pow_difficulty", "adm-pow", true]]) {
      const raw = $(id).value.trim();
      if (raw === "") continue;
      const n = Number(raw);
      if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) {
        notice("'" + $(id).labels[0].textContent + "' must be " + (integer ? "a whole number" : "a number") + ".", "error");
        $(id).focus();
        return;
      }
      body[field] = n;
    }
    body.admission_mode = $("adm-mode").value;
    await act("PUT", "/api/admin/rooms/" + encodeURIComponent(selected) + "/admission", body, "Admission settings applied.");
  });

  async function refreshMessage() {
    if (!selected) return;
    const r = await api("GET", "/api/rooms/" + encodeURIComponent(selected));
    const message = r.ok ? r.data.message : null;
    $("message-now").textContent = message && (message.en || message.de)
      ? [message.de && "de: " + message.de, message.en && "en: " + message.en].filter(Boolean).join(" · ")
      : "none";
  }

  async function sendMessage(body, done) {
    const r = await act("PUT", "/api/admin/rooms/" + encodeURIComponent(selected) + "/message", body, done);
    if (!r.ok && r.status === 404 && r.error.code !== "unknown_room") {
      notice("This gateway cannot show messages to waiting people yet (" + r.error.message + ").", "error");
    }
    refreshMessage();
  }

  $("message-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const de = $("msg-de").value.trim();
    const en = $("msg-en").value.trim();
    if (!de || !en) { notice("Write the message in German and in English.", "error"); return; }
    await sendMessage({ de, en }, "The message is shown to everyone waiting in " + selected + ".");
  });

  $("message-clear").addEventListener("click", async () => {
    if (!window.confirm("Clear the message shown to everyone waiting?")) return;
    await sendMessage({}, "The message was cleared.");
  });

  // ---- campaign view -------------------------------------------------------------
  async function loadCampaign() {
    const name = $("campaign-select").value;
    if (!name) return;
    const r = await api("GET", "/api/admin/campaigns/" + encodeURIComponent(name) + "/overview");
    if (!r.ok) { notice(r.error.message, "error"); return; }
    const c = r.data;
    $("campaign-view").hidden = false;
    const counties = $("county-body");
    counties.replaceChildren();
    for (const [county, s] of Object.entries(c.counties)) {
      const row = document.createElement("tr");
      cell(row, county);
      for (const f of ["free", "held", "confirmed", "reserved", "pairs_left", "waitlisted"]) cell(row, fmt(s[f]));
      counties.appendChild(row);
    }
    const base = "/api/admin/campaigns/" + encodeURIComponent(name) + "/appointments.csv";
    const supply = $("supply-body");
    supply.replaceChildren();
    for (const s of c.supply) {
      const row = document.createElement("tr");
      cell(row, s.at, "text");
      cell(row, s.what, "text");
      cell(row, brief(s.details).slice(0, 300), "text");
      supply.appendChild(row);
    }
    $("csv-all").href = base;
    await loadDaily(name);
  }
  $("campaign-load").addEventListener("click", loadCampaign);

  // places per county, center and day: the allocator answers for each county (202: some
  // counties did not answer in time, shown as such)
  async function loadDaily(name) {
    const campaign = "/api/admin/campaigns/" + encodeURIComponent(name);
    const r = await api("GET", campaign + "/inventory/daily");
    if (!r.ok) { notice(r.error.message, "error"); return; }
    const d = r.data;
    $("daily-status").textContent = d.missing.length
      ? "No answer yet for " + d.missing.join(", ") + "; ask again in a moment."
      : "Answered for every county.";
    const fields = ["capacity", "free", "held", "confirmed", "reserved"];
    const tables = [];
    for (const [county, c] of Object.entries(d.counties)) {
      const title = document.createElement("h4");
      title.textContent = "County " + county + (c.reason ? " (" + c.reason + ")" : "") + ", as of " + c.at;
      const table = document.createElement("table");
      table.dataset.county = county;
      const head = table.createTHead().insertRow();
      for (const h of ["Center", "Day", "Capacity", "Free", "Held", "Confirmed", "Reserved", "Appointment list"]) {
        const th = document.createElement("th");
        th.scope = "col";
        th.textContent = h;
        if (h === "Day" || h === "Appointment list") th.className = "text";
        head.appendChild(th);
      }
      const body = table.createTBody();
      for (const row of c.centers) {
        const tr = body.insertRow();
        tr.dataset.center = row.center;
        tr.dataset.day = row.day;
        cell(tr, row.center);
        cell(tr, row.day, "text");
        for (const f of fields) cell(tr, fmt(row[f])).dataset.field = f;
        const link = document.createElement("a");
        link.href = campaign + "/appointments.csv?center=" + encodeURIComponent(row.center) + "&day=" + row.day;
        link.textContent = "CSV";
        cell(tr, "", "text").appendChild(link);
      }
      tables.push(title, table);
    }
    $("daily-counties").replaceChildren(...tables);
  }
  $("daily-refresh").addEventListener("click", () => {
    const name = $("campaign-select").value;
    if (name) loadDaily(name);
  });

  $("codes-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("campaign-select").value;
    const group = $("codes-group").value.trim();
    const count = Number($("codes-count").value);
    if (!group) { notice("Name the priority group.", "error"); return; }
    if (!Number.isInteger(count) || count < 1) { notice("'How many' must be a whole number of at least 1.", "error"); return; }
    let response;
    try {
      response = await fetch("/api/admin/campaigns/" + encodeURIComponent(name) + "/codes?format=csv", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": auth.csrf },
        body: JSON.stringify({ group, count }),
      });
    } catch (err) { notice("The gateway did not answer.", "error"); return; }
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      notice((data && data.error && data.error.message) || "Issuing codes failed (" + response.status + ").", "error");
      refreshActions();
      return;
    }
    const blob = await response.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name + "-" + group + "-codes.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    notice(count + " access codes issued for " + group + "; the letters were downloaded.", "ok");
    refreshActions();
  });

  // ---- admitters, allocators, and the record of actions ------------------------
  async function refreshSystem() {
    if (!auth.csrf) return;
    const r = await api("GET", "/api/admin/system");
    if (!r.ok) return;
    const alloc = $("alloc-body");
    alloc.replaceChildren();
    for (const p of r.data.allocator.partitions) {
      const row = document.createElement("tr");
      for (const v of [p.partition, p.end_offset, p.committed_offset, p.lag, p.snapshot_offset]) cell(row, fmt(v, 0));
      cell(row, p.snapshot_error ? "unreadable: " + p.snapshot_error
        : p.snapshot_bytes === null ? "none" : fmt(p.snapshot_bytes / 1024, 1) + " KiB");
      alloc.appendChild(row);
    }
    const leaders = $("leader-body");
    leaders.replaceChildren();
    for (const a of r.data.admitters) {
      const row = document.createElement("tr");
      cell(row, a.room);
      cell(row, a.leader || "no leader", "text");
      cell(row, a.lease_left_s === null ? "–" : a.lease_left_s + " s");
      cell(row, fmt(a.fence, 0));
      leaders.appendChild(row);
    }
  }


  async function refreshActions() {
    if (!auth.csrf) return;
    const r = await api("GET", "/api/admin/audit?limit=50");
    if (!r.ok) return;
    const body = $("actions-body");
    body.replaceChildren();
    for (const a of r.data.actions) {
      const row = document.createElement("tr");
      cell(row, a.at, "text");
      cell(row, a.who, "text");
      const target = Object.values(a.target || {}).join("/");
      cell(row, a.action.replace(/\{[a-z_]+\}/g, "…") + (target ? " (" + target + ")" : "")
        + (a.request ? " " + JSON.stringify(a.request).slice(0, 120) : ""), "text");
      cell(row, a.status + (a.error ? " " + a.error : ""));
      cell(row, brief(a.before), "text");
      cell(row, changes(a.before, a.after), "text");
      body.appendChild(row);
    }
  }

  setInterval(refreshHistory, 5000);
  setInterval(refreshSystem, 10000);
  setInterval(refreshActions, 10000);

  // ---- start: signed in already (a reload), or the sign-in form -------------------
  (async () => {
    const r = await api("GET", "/api/operator/session");
    if (r.ok && r.data.signed_in) signedIn(r.data);
    else if (r.ok) signedOut(r.data.reason === "not_signed_in" ? "" : r.data.message);
    else signedOut(r.error.message);
  })();
})();
