"""Proof of work for anonymous joins: the challenge route and the check a join passes.

When a room's ``pow_difficulty`` is above 0, an anonymous join must carry
``{"pow": {"challenge": ..., "solution": ...}}``: a challenge from
``GET /api/rooms/{room}/challenge`` (stateless, signed with the gateway's signing
keys, valid for two minutes) and a solution found by the page's script or by
``waitingroom.pow.solve`` (the algorithm is documented in ``waitingroom.pow``).

- Joins with an access code skip it: a code is already a scarce credential (one
  place per code), so a proof of work would only slow down the people it is for.
- Sources exempt from the rate limits (``FAIRQ_LOADTEST_NETWORKS``, the header
  ``X-Fairq-Loadtest-Key``) skip it too; exemption is checked only for a join that
  would be refused, as in the rate limiter.
- A solved challenge serves one join. Used challenges are remembered in this
  gateway's memory until they expire (``waitingroom.pow.ReplayGuard``): no Redis
  round trip is spent, so behind N gateways one solution can serve at most N
  joins (one per gateway) — add log2(N) bits of difficulty to make up for it. A
  challenge is spent once it has been checked, even if the join then fails.

Everything here runs in memory: checking a join's proof costs one HMAC and one hash.
"""

from __future__ import annotations

from aiohttp import web

from gateway.contracts import Challenge, JoinRequest, Proof, operation
from gateway.errors import ApiError, Code
from gateway.frontdoor import Access, add_routes
from gateway.http import json_response
from gateway.ratelimit import Exemptions
from gateway.roomcache import RoomView
from gateway.settings import GatewaySettings
from gateway.state import GATEWAY
from waitingroom.pow import (
    ChallengeSigner,
    PowExpired,
    PowInvalid,
    ReplayGuard,
    is_solution,
)

ALGORITHM = (
    "Find a decimal integer solution (no sign, no leading zeros, at most 20 digits) such"
    " that SHA-256 of the ASCII bytes challenge + ':' + solution starts with at least"
    ' \'difficulty\' zero bits. Send it as {"pow": {"challenge": ..., "solution": ...}}'
    " in the join body."
)

routes = web.RouteTableDef()


def challenge_url(room: str) -> str:
    return f"/api/rooms/{room}/challenge"


class PowGate:
    """Issues challenges and checks the proofs of anonymous joins, in one gateway's memory."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.signer = ChallengeSigner(settings.signing_keys, settings.signing_kid)
        self.guard = ReplayGuard(self.signer.ttl_s)
        self._exemptions = Exemptions(settings.rate_limits)  # the rate limits' sources

    def check(self, request: web.Request, view: RoomView, body: JoinRequest, now_s: float) -> None:
        """Raise ApiError unless the join needs no proof or carries a good, unused one."""
        difficulty = view.snap.config.pow_difficulty
        if difficulty <= 0 or body.access_code is not None:
            return
        room = view.snap.config.name
        proof = body.pow
        try:
            self._verify(proof, room, difficulty, now_s)
        except ApiError:
            if self._exemptions.exempts(request):
                return
            raise

    def _verify(self, proof: Proof | None, room: str, difficulty: int, now_s: float) -> None:
        extra = {"challenge_url": challenge_url(room), "difficulty": difficulty}
        if proof is None:
            raise ApiError(
                Code.POW_REQUIRED, "this room asks joins for a proof of work", extra=extra
            )
        token, solution = proof.challenge, str(proof.solution)
        try:
            challenge = self.signer.verify(token, room, now_s)
        except PowExpired as e:
            raise ApiError(Code.POW_EXPIRED, "the challenge has expired", extra=extra) from e
        except PowInvalid as e:
            raise ApiError(Code.POW_INVALID, f"the challenge is not valid: {e}", extra=extra) from e
        if challenge.difficulty < difficulty:
            raise ApiError(
                Code.POW_INVALID, "the difficulty was raised; solve a new challenge", extra=extra
            )
        if not is_solution(token, solution, challenge.difficulty):
            raise ApiError(
                Code.POW_INVALID, "the solution does not solve the challenge", extra=extra
            )
        if not self.guard.first_use(challenge.nonce, challenge.expires_at_s, now_s):
            raise ApiError(Code.POW_INVALID, "this challenge was used already", extra=extra)


POW_GATE = web.AppKey("pow_gate", PowGate)


def install(app: web.Application, settings: GatewaySettings) -> None:
    """Give the app its proof-of-work gate and the challenge route."""
    app[POW_GATE] = PowGate(settings)
    add_routes(app, routes, Access.PUBLIC)


def check_join_pow(request: web.Request, view: RoomView, body: JoinRequest, now_s: float) -> None:
    """The join handler's one call: refuses an anonymous join without a needed proof."""
    request.app[POW_GATE].check(request, view, body, now_s)


@routes.get("/api/rooms/{room}/challenge")
@operation("a signed proof-of-work challenge for a join", {200: Challenge}, Code.UNKNOWN_ROOM)
async def get_challenge(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    name = request.match_info["room"]
    view = await gw.rooms.get(name)
    if view is None:
        raise ApiError(Code.UNKNOWN_ROOM, f"there is no room {name!r}")
    difficulty = view.snap.config.pow_difficulty
    signer = request.app[POW_GATE].signer
    token, _ = signer.issue(name, difficulty, gw.clock())
    body = {
        "room": name,
        "required": difficulty > 0,
        "difficulty": difficulty,
        "challenge": token,
        "expires_in_s": signer.ttl_s,
        "algorithm": ALGORITHM,
    }
    return json_response(body, headers={"Cache-Control": "no-store"})
