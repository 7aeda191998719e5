"""Operator console sessions: the operator key, given once, becomes a signed cookie.

Sign-in (``POST /api/operator/session`` with the key and the operator's name) answers
with a cookie that is HttpOnly (no script reads it), SameSite=Strict (no other site's
page sends it), expiring (``Max-Age``, and the expiry is inside the signed value),
``Secure`` when the console is served over TLS, and scoped to ``/``. The key itself is
never stored in the browser and never appears in a URL.

The cookie's value is ``<session id>.<expires at>.<HMAC>``, signed with a secret
derived from the operator key: changing the key ends every session. A session also
exists in Redis (``keys.operator_session``) until it expires or the operator signs
out, so signing out ends it on every gateway, not only in this browser.

Cross-site requests: a state-changing request made with the cookie must carry the
session's CSRF token (``X-CSRF-Token``, an HMAC of the session id, handed to the
console at sign-in) and, when the browser sends ``Origin``, come from this origin.
SameSite=Strict alone already keeps other sites' requests cookie-less.

Failed sign-ins are counted per client address in Redis (shared by every gateway):
``SIGNIN_MAX_FAILURES`` in ``SIGNIN_WINDOW_S`` and the address is refused (429)
until the window ends. The address is the TCP peer's (``request.remote``), so
behind a proxy that does not keep addresses, every client shares one budget.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import hdrs, web

from gateway.errors import ApiError
from waitingroom import keys
from waitingroom.rooms import text

SESSION_COOKIE = "fairq_operator"
CSRF_HEADER = "X-CSRF-Token"
SIGNIN_MAX_FAILURES = 10
SIGNIN_WINDOW_S = 300
MAX_NAME_CHARS = 60
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# set on a request by ``gateway.operators`` once its session (or key) is verified
OPERATOR = web.RequestKey("operator", str)


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    who: str  # the name the operator gave at sign-in
    expires_at_s: int
    csrf_token: str

    def to_json(self) -> dict[str, object]:
        return {"who": self.who, "expires_at_s": self.expires_at_s, "csrf_token": self.csrf_token}


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
        raise ApiError(403, "cross_origin", "this request comes from another site; refused")


class OperatorSessions:
    """Sign-in, verification and sign-out of console sessions (any gateway verifies)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        operator_key: str,
        lifetime_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._key = operator_key.encode()
        self._secret = hmac.new(self._key, b"fairq operator console session", "sha256").digest()
        self._lifetime_s = lifetime_s
        self._clock = clock

    @property
    def lifetime_s(self) -> int:
        return self._lifetime_s

    def _mac(self, purpose: str, *parts: object) -> str:
        message = "|".join([purpose, *map(str, parts)]).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _session(self, session_id: str, who: str, expires_at_s: int) -> Session:
        return Session(session_id, who, expires_at_s, self._mac("csrf", session_id))

    async def sign_in(self, key: str, who: str, client: str) -> tuple[Session, str]:
        """A new session and its cookie value for the right key; 429 after too many
        failures from ``client``, 403 for a wrong key (counted)."""
        failures_key = keys.operator_signin_failures(client)
        failures = int(await self._redis.get(failures_key) or 0)
        if failures >= SIGNIN_MAX_FAILURES:
            retry = max(1, int(await self._redis.ttl(failures_key)))
            raise ApiError(
                429,
                "too_many_sign_ins",
                f"too many failed sign-ins from this address; try again in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        if not hmac.compare_digest(key.encode(), self._key):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(failures_key)
                pipe.expire(failures_key, SIGNIN_WINDOW_S, nx=True)
                await pipe.execute()
            raise ApiError(403, "forbidden", "the operator key is not valid")
        session_id = secrets.token_urlsafe(18)
        expires_at_s = int(self._clock()) + self._lifetime_s
        await self._redis.set(keys.operator_session(session_id), who, ex=self._lifetime_s)
        value = f"{session_id}.{expires_at_s}.{self._mac('session', session_id, expires_at_s)}"
        return self._session(session_id, who, expires_at_s), value

    async def verify(self, value: str) -> Session:
        """The live session of a cookie value; 401 when it is forged, expired or ended."""
        session_id, _, rest = value.partition(".")
        expires, _, mac = rest.partition(".")
        expected = self._mac("session", session_id, expires)
        if not (expires.isascii() and expires.isdigit()) or not hmac.compare_digest(
            mac.encode(), expected.encode()
        ):
            raise ApiError(401, "not_signed_in", "the session is not valid; sign in again")
        if int(expires) <= self._clock():
            raise ApiError(401, "session_expired", "the session has expired; sign in again")
        who = await self._redis.get(keys.operator_session(session_id))
        if who is None:
            raise ApiError(401, "session_ended", "the session has ended; sign in again")
        return self._session(session_id, text(who), int(expires))

    def check_csrf(self, request: web.Request, session: Session) -> None:
        """403 unless the request carries the session's CSRF token."""
        token = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
            raise ApiError(403, "csrf_token_missing", f"a console request must carry {CSRF_HEADER}")

    async def sign_out(self, session: Session) -> None:
        await self._redis.delete(keys.operator_session(session.session_id))


def session_cookie(value: str, max_age_s: int, secure: bool) -> str:
    """The ``Set-Cookie`` value (``max_age_s`` 0 deletes the cookie)."""
    attributes = [
        f"{SESSION_COOKIE}={value}",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        f"Max-Age={max_age_s}",
    ]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)
