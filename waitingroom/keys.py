"""Every Redis key fairq uses, in one place.

fairq uses one Redis server, not a Cluster: the join with an access code reads the
campaign's codes and the room's keys in one script (one round trip per join). Keys
still carry hash tags (``{room}``, ``{campaign}``) naming what belongs together.
"""

from __future__ import annotations

PREFIX = "fq"


def rooms() -> str:
    """Set of all room names."""
    return f"{PREFIX}:rooms"


def state_marker() -> str:
    """String: the run id of the Redis server the durable state was last restored into.

    Missing after a flush or an empty restart; deleted by ``durable.check_on_connect``
    when a connection finds another server (a restart from an older copy, a failover).
    While it is missing, durable rooms hand out nothing (``scripts``: 'restoring').
    """
    return f"{PREFIX}:state:restored"


def state_restore_lock() -> str:
    """String with TTL: the id of the process restoring the durable state (one at a time)."""
    return f"{PREFIX}:state:restoring"


def room(name: str) -> str:
    """Hash: the room's configuration and its live counters (see waitingroom.rooms)."""
    return f"{PREFIX}:room:{{{name}}}"


def room_active(name: str) -> str:
    """Sorted set: admitted queue positions still active, scored by their deadline (epoch s)."""
    return f"{PREFIX}:room:{{{name}}}:active"


def room_code_tickets(name: str) -> str:
    """Hash: access-code hash -> the ticket issued for it, as JSON (one place per code)."""
    return f"{PREFIX}:room:{{{name}}}:code_tickets"


def room_leader(name: str) -> str:
    """String with TTL: the id of the admitter that leads this room."""
    return f"{PREFIX}:room:{{{name}}}:leader"


def room_fence(name: str) -> str:
    """Counter: fencing token, raised each time an admitter becomes leader."""
    return f"{PREFIX}:room:{{{name}}}:fence"


def campaign(name: str) -> str:
    """String (JSON): the campaign's public description: counties, centers, vaccines."""
    return f"{PREFIX}:campaign:{{{name}}}"


def campaign_delivery(name: str, delivery_id: str) -> str:
    """String: the digest of the inventory delivery an operator sent with this id."""
    return f"{PREFIX}:campaign:{{{name}}}:delivery:{delivery_id}"


def campaign_codes(name: str) -> str:
    """Hash: access-code hash -> priority group, for codes issued for this campaign."""
    return f"{PREFIX}:campaign:{{{name}}}:codes"


def campaign_inventory(name: str) -> str:
    """Hash: pairs left per county from the allocator's summaries, and the verdict number."""
    return f"{PREFIX}:campaign:{{{name}}}:inventory"


def booking(booking_id: str) -> str:
    """Hash: a booking's routing record (room, campaign, county, position, identity)."""
    return f"{PREFIX}:booking:{booking_id}"


def bookings_unplaced() -> str:
    """Sorted set: booking ids whose Book the broker has not acknowledged yet, by the
    time their record was written (``gateway.placement`` sends them until it has)."""
    return f"{PREFIX}:bookings:unplaced"


def token_booking(token_id: str) -> str:
    """String: the booking id made with a booking token (a token is good for one booking)."""
    return f"{PREFIX}:token:{token_id}:booking"


def identity_claim(campaign: str, identity: str) -> str:
    """String: the booking id that holds the campaign's one pair for this identity.

    ``identity`` is ``code:<hash>`` (an access code), ``ticket:<id>`` (an anonymous
    ticket) or ``key:<hash>`` (an identity key given at confirm). Taken and handed
    over only by ``scripts.CLAIM_IDENTITY``, given up by ``scripts.RELEASE``.
    """
    return f"{PREFIX}:campaign:{{{campaign}}}:identity:{identity}"


def code_guesses_of_client(campaign: str, client: str, window: int) -> str:
    """Counter with TTL: wrong access codes of the campaign one client tried in a window
    (``waitingroom.guesses``)."""
    return f"{PREFIX}:campaign:{{{campaign}}}:guesses:client:{client}:{window}"


def code_guesses_of_prefix(campaign: str, prefix: str, window: int) -> str:
    """Counter with TTL: wrong access codes of the campaign with one prefix (its digest),
    from every client, in a window (``waitingroom.guesses``)."""
    return f"{PREFIX}:campaign:{{{campaign}}}:guesses:prefix:{prefix}:{window}"


def code_guesses_pattern(campaign: str) -> str:
    """Glob (SCAN MATCH) of every wrong-code counter of the campaign."""
    return f"{PREFIX}:campaign:{{{campaign}}}:guesses:*"


def operator_session(session_id: str) -> str:
    """String with TTL: a browser session's record as JSON (role, name, key fingerprint:
    ``gateway.sessions``), operator's or agent's; gone when signed out or expired."""
    return f"{PREFIX}:operator:session:{session_id}"


def operator_signin_failures(client: str) -> str:
    """Counter with TTL: failed sign-ins (operators' and agents') from one client address
    in the window."""
    return f"{PREFIX}:operator:signin_failures:{client}"


def operator_actions() -> str:
    """List (newest first, capped): every operator action as JSON (``gateway.actionlog``)."""
    return f"{PREFIX}:operator:actions"


def agent_actions() -> str:
    """List (newest first, capped): every call-center agent action as JSON
    (``gateway.actionlog``)."""
    return f"{PREFIX}:agent:actions"


def room_history(name: str) -> str:
    """Sorted set: the room's sampled figures as JSON, scored by their time bucket
    (``gateway.history``); points older than the kept span are trimmed."""
    return f"{PREFIX}:room:{{{name}}}:history"


def readmodel_offsets(topic: str) -> str:
    """Hash: partition -> the next offset of ``topic`` the booking read model has not
    applied yet (``gateway.readmodel``); written in the same script as what it reflects."""
    return f"{PREFIX}:readmodel:{{{topic}}}:offsets"


def readmodel_booking(booking_id: str) -> str:
    """Hash with TTL: a booking's current view (state, rev, appointments...) as the
    allocator's events made it (``gateway.readmodel``)."""
    return f"{PREFIX}:readmodel:booking:{booking_id}"


def readmodel_appointments(campaign: str) -> str:
    """Sorted set with TTL, all scores 0: one member per confirmed appointment of the
    campaign, ordered as the export lists them (``gateway.readmodel``)."""
    return f"{PREFIX}:readmodel:{{{campaign}}}:appointments"


def readmodel_tally() -> str:
    """Hash: booking events applied, by ``[campaign, event type]`` as JSON (the console's
    holds, confirmations and expiries since the log began)."""
    return f"{PREFIX}:readmodel:tally"


def readmodel_summaries() -> str:
    """Hash: the latest summary of each county, ``[campaign, county]`` as JSON -> the
    county's summary as JSON."""
    return f"{PREFIX}:readmodel:summaries"


def readmodel_inventory_answers() -> str:
    """Hash: inventory command id -> its first answer (the event, base64 of its bytes)."""
    return f"{PREFIX}:readmodel:inventory_answers"
