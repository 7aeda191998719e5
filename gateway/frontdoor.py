"""The front door: one aiohttp middleware every request goes through.

It decides from the matched route, with a plan made once per route when the app starts:

- **who may ask**: every route is declared ``PUBLIC``, ``OPERATOR`` or ``AGENT`` where
  its table is added (``add_routes``), keyed by its handler. An operator or agent
  route goes through its door (``gateway.operators``: the key or a signed-in session,
  and the action log) before its handler runs. A route added any other way has no
  declaration: the app refuses to start (``UnclassifiedRoute``), and a request that
  reaches a route without a plan is answered 500, never served unguarded;
- **how much**: the route's rate limit and, for an event stream, the client's place
  among its open streams (``gateway.ratelimit``);
- **the answer to a failure**: JSON (``ANSWERED``, 404 and 405 with ``Allow``
  included), and a logged ``internal_error`` for the unexpected;
- **the counters** by route (its canonical path; ``unmatched`` for what no route takes).

Only public aiohttp API: ``app.router.routes()``, ``route.handler``,
``request.match_info.route`` and ``.http_exception``: no route is re-registered and no
aiohttp internal is touched. The middleware is aiohttp's new-style kind, whose chain
aiohttp (3.14) builds once per handler, not per request.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.errors import ANSWERED, error_answer, internal_error
from gateway.metrics import GatewayMetrics
from gateway.ratelimit import RateLimiter

logger = logging.getLogger(__name__)

UNMATCHED = "unmatched"  # the counters' route label of requests no route takes


class Access(enum.Enum):
    """Who may call a route: declared once per route table, where it is added."""

    PUBLIC = "public"  # anyone (a route may still check a ticket or a session itself)
    OPERATOR = "operator"  # the operator key or an operator session (gateway.operators)
    AGENT = "agent"  # an agent's key or session, or the operator key (gateway.operators)


# What runs around a handler for one request: (request, handler) -> the answer.
Around = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
# A door: given a route's canonical path, what guards a request to it.
Gate = Callable[[str], Around]


class UnclassifiedRoute(RuntimeError):
    """A route was added without saying who may call it (see ``add_routes``)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What the front door does for requests to one route, decided when the app starts."""

    access: Access
    observe: Callable[[int, float | None], None]  # the route's counters
    check: Callable[[web.Request], None] | None  # the rate limit
    around: Around | None  # the door and/or the stream cap


class FrontDoor:
    """The routes' declarations (``declare``), their plans (``plan``, on startup) and the
    middleware (``middleware``) that follows them."""

    def __init__(
        self, metrics: GatewayMetrics, limiter: RateLimiter, gates: Mapping[Access, Gate]
    ) -> None:
        self._counters = metrics.counters
        self._limiter = limiter
        self._gates = gates
        self._access: dict[Handler, Access] = {}
        self._plans: dict[web.AbstractRoute, Plan] = {}
        self._unmatched = Plan(Access.PUBLIC, self._counters.route(UNMATCHED).observe, None, None)

    def declare(self, routes: Iterable[web.AbstractRoute], access: Access) -> None:
        """Who may call ``routes`` (a handler serves one kind of caller only)."""
        for route in routes:
            known = self._access.setdefault(route.handler, access)
            if known is not access:
                raise ValueError(f"{route} is declared both {known.value} and {access.value}")

    def access_of(self, route: web.AbstractRoute) -> Access:
        access = self._access.get(route.handler)
        if access is None:
            raise UnclassifiedRoute(
                f"{route.method} {label_of(route)} was added without saying who may call it:"
                " add it with gateway.frontdoor.add_routes"
            )
        return access

    async def plan(self, app: web.Application) -> None:
        """Make every route's plan (an ``on_startup`` handler, the last one)."""
        plans = {}
        for route in app.router.routes():
            label, method = label_of(route), route.method
            access = self.access_of(route)
            gate = self._gates.get(access)
            door = None if gate is None else gate(label)
            cap = self._limiter.cap_of(method, label)
            around = door if cap is None else cap if door is None else nested(door, cap)
            check = self._limiter.guard(method, label)
            plans[route] = Plan(access, self._counters.route(label).observe, check, around)
        self._plans.clear()  # in place: the middleware holds this dict
        self._plans.update(plans)

    def plans(self) -> Mapping[web.AbstractRoute, Plan]:
        return self._plans

    def middleware(self) -> Middleware:
        """The middleware: one frame around the handler (a status check, the gateway's
        hottest path, pays a dict lookup, a clock read and the counters)."""
        plans, unmatched = self._plans, self._unmatched
        clock, stream_type = time.perf_counter, web.StreamResponse

        @web.middleware
        async def front_door(request: web.Request, handler: Handler) -> web.StreamResponse:
            started_s = clock()
            match = request.match_info
            plan = plans.get(match.route)
            if plan is None:
                plan = unmatched
                if match.http_exception is None:  # a route the door has no plan for
                    handler = _unplanned
            try:
                if plan.check is not None:
                    plan.check(request)
                around = plan.around
                response = await (handler(request) if around is None else around(request, handler))
            except ANSWERED as e:
                response = error_answer(request, e)
            except Exception:
                logger.exception("unhandled error on %s %s", request.method, request.path)
                response = internal_error()
            # an event stream has no latency
            seconds = None if type(response) is stream_type else clock() - started_s
            plan.observe(response.status, seconds)
            return response

        return front_door


def label_of(route: web.AbstractRoute) -> str:
    """A route's canonical path (``/api/rooms/{room}/status``): its label everywhere."""
    resource = route.resource
    return "" if resource is None else resource.canonical


def nested(outer: Around, inner: Around) -> Around:
    """``outer`` around ``inner`` around the handler (a door around a stream's cap)."""

    async def around(request: web.Request, handler: Handler) -> web.StreamResponse:
        async def held(r: web.Request) -> web.StreamResponse:
            return await inner(r, handler)

        return await outer(request, held)

    return around


async def _unplanned(request: web.Request) -> web.StreamResponse:
    raise RuntimeError(f"no front-door plan for the route of {request.method} {request.path}")


FRONT_DOOR = web.AppKey("front_door", FrontDoor)


def add_routes(app: web.Application, table: Sequence[web.AbstractRouteDef], access: Access) -> None:
    """Add ``table``'s routes to ``app``, callable by ``access`` (the only way to add a
    route the app will start with)."""
    app.router.add_routes(table)
    handlers = {d.handler for d in table if isinstance(d, web.RouteDef)}
    app[FRONT_DOOR].declare((r for r in app.router.routes() if r.handler in handlers), access)


def install(app: web.Application, door: FrontDoor) -> None:
    """Put ``door`` in front of ``app``: its middleware now, its plans once every route
    is added (call ``install`` before adding routes, and add no ``on_startup`` handler
    that adds routes after it)."""
    app[FRONT_DOOR] = door
    app.middlewares.append(door.middleware())
    app.on_startup.append(door.plan)
