"""Browser sessions of operators (the console) and call-center agents (the call screen).

A key, given once at sign-in (``POST /api/operator/session`` or ``/api/agent/session``),
becomes a cookie that is HttpOnly (no script reads it), SameSite=Strict (no other
site's page sends it), expiring (``Max-Age``, and the expiry is inside the signed
value), ``Secure`` when served over TLS, and scoped to ``/``. The key itself is never
stored in the browser and never appears in a URL.

Each session has a role (``OPERATOR`` or ``AGENT``), and each role its own cookie, so
a browser can be signed in to both screens and one role's session never opens the
other's routes: the role is inside the signature and in the session's record. An
operator names themself at sign-in (one operator key is shared); an agent is named
by their key (``FAIRQ_AGENT_KEYS``; the operator key signs in as agent ``operator``).

The cookie's value is ``<session id>.<expires at>.<HMAC>``, signed with a secret
derived from the operator key: changing it ends every session. A session also exists
in Redis (``keys.operator_session``: its role, name, and a fingerprint of the key it
signed in with) until it expires or is signed out, so signing out ends it on every
gateway, and changing or removing an agent's key ends that agent's sessions.

Cross-site requests: a state-changing request made with the cookie must carry the
session's CSRF token (``X-CSRF-Token``, an HMAC of the session id, handed to the page
at sign-in) and, when the browser sends ``Origin``, come from this origin.
SameSite=Strict alone already keeps other sites' requests cookie-less.

Failed sign-ins (of either role) are counted per client address in Redis (shared by
every gateway): ``SIGNIN_MAX_FAILURES`` in ``SIGNIN_WINDOW_S`` and the address is
refused (429) until the window ends. The address is the TCP peer's
(``request.remote``), so behind a proxy that does not keep addresses, every client
shares one budget.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis
from aiohttp import hdrs, web

from gateway.contracts import (
    SESSION_CODES,
    AgentSignIn,
    OperatorSignIn,
    SessionState,
    SignedInSession,
    SignedOut,
    operation,
)
from gateway.errors import ApiError, Code
from gateway.http import holder_of, json_response, read_body
from gateway.state import GATEWAY
from waitingroom import keys

logger = logging.getLogger(__name__)

CSRF_HEADER = "X-CSRF-Token"
SIGNIN_MAX_FAILURES = 10
SIGNIN_WINDOW_S = 300
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Role:
    name: str  # "operator" or "agent"
    cookie: str  # the role's own session cookie
    signin_path: str  # POST signs in, GET says whether signed in, DELETE signs out
    names_itself: bool  # the sign-in body names the person (else the key does)


OPERATOR = Role("operator", "fairq_operator", "/api/operator/session", names_itself=True)
AGENT = Role("agent", "fairq_agent", "/api/agent/session", names_itself=False)


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    role: str
    who: str  # the operator's name given at sign-in, or the agent whose key it was
    expires_at_s: int
    csrf_token: str

    def to_json(self) -> dict[str, object]:
        return {
            "role": self.role,
            "who": self.who,
            "expires_at_s": self.expires_at_s,
            "csrf_token": self.csrf_token,
        }


# set on a request by ``gateway.operators``' door once its session is verified
SIGNED_IN = web.RequestKey("signed_in", Session)


def served_over_tls(request: web.Request, trust_forwarded_proto: bool) -> bool:
    """Whether the browser reached us over TLS: directly, or through a trusted proxy
    that says so in ``X-Forwarded-Proto``."""
    if request.secure:
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    return trust_forwarded_proto and forwarded.split(",")[0].strip().lower() == "https"


def check_origin(request: web.Request, trust_forwarded_proto: bool) -> None:
    """403 when the browser says the request comes from another origin."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return
    scheme = "https" if served_over_tls(request, trust_forwarded_proto) else "http"
    if origin != f"{scheme}://{request.host}":
        raise ApiError(Code.CROSS_ORIGIN, "this request comes from another site; refused")


class Sessions:
    """Sign-in, verification and sign-out of sessions of both roles (any gateway verifies)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        operator_key: str,
        agent_keys: Mapping[str, str],
        lifetime_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._keys = {
            OPERATOR.name: {"operator": operator_key},
            AGENT.name: {"operator": operator_key, **agent_keys},
        }
        self._secret = hmac.new(
            operator_key.encode(), b"fairq operator console session", "sha256"
        ).digest()
        self._lifetime_s = lifetime_s
        self._clock = clock

    @property
    def lifetime_s(self) -> int:
        return self._lifetime_s

    def _mac(self, purpose: str, *parts: object) -> str:
        message = "|".join([purpose, *map(str, parts)]).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _fingerprint(self, role: Role, holder: str) -> str | None:
        """Of the key ``holder`` has now in ``role`` (None: none any more)."""
        key = self._keys[role.name].get(holder)
        return None if key is None else self._mac("key", role.name, holder, key)

    def _session(self, session_id: str, role: Role, who: str, expires_at_s: int) -> Session:
        return Session(session_id, role.name, who, expires_at_s, self._mac("csrf", session_id))

    async def sign_in(
        self, role: Role, key: str, name: str | None, client: str
    ) -> tuple[Session, str]:
        """A new session and its cookie value for a key of ``role``; 429 after too many
        failures from ``client``, 403 for a wrong key (counted). ``name`` names an
        operator; an agent is the key's holder."""
        failures_key = keys.operator_signin_failures(client)
        failures = int(await self._redis.get(failures_key) or 0)
        if failures >= SIGNIN_MAX_FAILURES:
            retry = max(1, int(await self._redis.ttl(failures_key)))
            raise ApiError(
                Code.TOO_MANY_SIGN_INS,
                f"too many failed sign-ins from this address; try again in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        try:
            holder = holder_of(key, self._keys[role.name], role.name)
        except ApiError:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(failures_key)
                pipe.expire(failures_key, SIGNIN_WINDOW_S, nx=True)
                await pipe.execute()
            raise
        who = name if role.names_itself and name else holder
        session_id = secrets.token_urlsafe(18)
        expires_at_s = int(self._clock()) + self._lifetime_s
        record = {"role": role.name, "who": who, "holder": holder}
        record["key"] = self._fingerprint(role, holder) or ""
        await self._redis.set(
            keys.operator_session(session_id), orjson.dumps(record), ex=self._lifetime_s
        )
        mac = self._mac("session", role.name, session_id, expires_at_s)
        value = f"{session_id}.{expires_at_s}.{mac}"
        return self._session(session_id, role, who, expires_at_s), value

    async def verify(self, role: Role, value: str) -> Session:
        """The live ``role`` session of a cookie value; 401 when it is forged, of another
        role, expired, ended, or its key has changed."""
        session_id, _, rest = value.partition(".")
        expires, _, mac = rest.partition(".")
        expected = self._mac("session", role.name, session_id, expires)
        if not (expires.isascii() and expires.isdigit()) or not hmac.compare_digest(
            mac.encode(), expected.encode()
        ):
            raise ApiError(Code.NOT_SIGNED_IN, "the session is not valid; sign in again")
        if int(expires) <= self._clock():
            raise ApiError(Code.SESSION_EXPIRED, "the session has expired; sign in again")
        raw = await self._redis.get(keys.operator_session(session_id))
        if raw is None:
            raise ApiError(Code.SESSION_ENDED, "the session has ended; sign in again")
        record = orjson.loads(raw)
        if record.get("role") != role.name or record.get("key") != self._fingerprint(
            role, record.get("holder", "")
        ):
            raise ApiError(Code.SESSION_ENDED, "the key of this session has changed; sign in again")
        return self._session(session_id, role, str(record["who"]), int(expires))

    def check_csrf(self, request: web.Request, session: Session) -> None:
        """403 unless the request carries the session's CSRF token."""
        token = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
            raise ApiError(Code.CSRF_TOKEN_MISSING, f"a signed-in request must carry {CSRF_HEADER}")

    async def sign_out(self, session: Session) -> None:
        await self._redis.delete(keys.operator_session(session.session_id))


SESSIONS = web.AppKey("sessions", Sessions)


def session_cookie(role: Role, value: str, max_age_s: int, secure: bool) -> str:
    """The ``Set-Cookie`` value (``max_age_s`` 0 deletes the cookie)."""
    attributes = [
        f"{role.cookie}={value}",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        f"Max-Age={max_age_s}",
    ]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


async def signed_in_session(request: web.Request, role: Role) -> Session:
    """The request's live ``role`` session (401 without one), checked against
    cross-site use when the request changes something."""
    value = request.cookies.get(role.cookie)
    if not value:
        raise ApiError(Code.NOT_SIGNED_IN, f"sign in with the {role.name} key first")
    sessions = request.app[SESSIONS]
    session = await sessions.verify(role, value)
    if request.method not in SAFE_METHODS:
        check_origin(request, request.app[GATEWAY].settings.trust_forwarded_proto)
        sessions.check_csrf(request, session)
    return session


def session_routes(role: Role) -> web.RouteTableDef:
    """Sign in (POST), am I signed in (GET), sign out (DELETE) at ``role.signin_path``:
    the same handlers for every role."""
    routes = web.RouteTableDef()
    body_type: type[OperatorSignIn | AgentSignIn] = (
        OperatorSignIn if role.names_itself else AgentSignIn
    )

    @routes.post(role.signin_path)
    @operation(
        f"sign in with the {role.name} key: sets the session cookie, returns the CSRF token",
        {200: SignedInSession},
        Code.UNAUTHORIZED,
        Code.FORBIDDEN,
        Code.CROSS_ORIGIN,
        Code.TOO_MANY_SIGN_INS,
        body=body_type,
        tag="sessions",
    )
    async def sign_in(request: web.Request) -> web.Response:
        settings = request.app[GATEWAY].settings
        check_origin(request, settings.trust_forwarded_proto)
        body = await read_body(request, body_type)
        name = " ".join(body.name.split()) if isinstance(body, OperatorSignIn) else None
        key = body.key
        sessions = request.app[SESSIONS]
        session, value = await sessions.sign_in(role, key, name, request.remote or "unknown")
        logger.info("%s %r signed in from %s", role.name, session.who, request.remote)
        secure = served_over_tls(request, settings.trust_forwarded_proto)
        return json_response(
            session.to_json(),
            headers={"Set-Cookie": session_cookie(role, value, sessions.lifetime_s, secure)},
        )

    @routes.get(role.signin_path)
    @operation("whether this browser is signed in", {200: SessionState}, tag="sessions")
    async def current_session(request: web.Request) -> web.Response:
        """Whether this browser is signed in (the page asks when it loads): 200 either
        way, with the reason when not."""
        try:
            session = await signed_in_session(request, role)
        except ApiError as e:
            return json_response({"signed_in": False, "reason": e.code, "message": e.message})
        return json_response({"signed_in": True} | session.to_json())

    @routes.delete(role.signin_path)
    @operation(
        "sign out (with X-CSRF-Token): the session ends on every gateway",
        {200: SignedOut},
        *SESSION_CODES,
        tag="sessions",
    )
    async def sign_out(request: web.Request) -> web.Response:
        session = await signed_in_session(request, role)
        await request.app[SESSIONS].sign_out(session)
        logger.info("%s %r signed out", role.name, session.who)
        secure = served_over_tls(request, request.app[GATEWAY].settings.trust_forwarded_proto)
        return json_response(
            {"signed_out": True}, headers={"Set-Cookie": session_cookie(role, "", 0, secure)}
        )

    return routes
