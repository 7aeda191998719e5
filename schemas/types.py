"""Constrained scalar types of the contracts, declared once as msgspec ``Annotated`` types.

A message field, an HTTP body field and the JSON Schema generated from either take
their limits from here, so a limit is written once.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from msgspec import Meta

MAX_ID_LEN = 128
MAX_NAME_LEN = 200  # a person-readable name: a center's, a vaccine's
MAX_SLOT_ID_LEN = 300  # an appointment's slot id (center, vaccine and start)
# "$(?!\n)": the end of the text, not before a final newline ("$" alone, in the search
# msgspec makes, would let "name\n" through); ECMA-262 as well, for JSON Schema.
ID_PATTERN_TEXT = r"^[a-z0-9][a-z0-9_-]{0,63}$(?!\n)"
ISO_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$(?!\n)"

# A non-empty string a producer makes (ids of commands, bookings, identities, ...).
Text = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LEN)]
# A name an operator gives (campaigns, counties, centers, vaccines, rooms, groups): safe in
# keys, file names and headers.
Ident = Annotated[str, Meta(pattern=ID_PATTERN_TEXT)]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LEN)]
SlotId = Annotated[str, Meta(min_length=1, max_length=MAX_SLOT_ID_LEN)]
# An ISO date, YYYY-MM-DD; that it is a day of the calendar is checked by ``check_iso_date``
# (a pattern cannot say that February has no 30th).
IsoDate = Annotated[str, Meta(pattern=ISO_DATE_PATTERN)]
Count = Annotated[int, Meta(ge=0)]
Positive = Annotated[int, Meta(ge=1)]
# A finite number: NaN and the infinities lie outside any range.
Finite = Annotated[float, Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)]


def check_iso_date(value: str | None, field: str) -> None:
    """ValueError naming ``field`` unless ``value`` (matching ``IsoDate``) is a real day.

    Called from a message's ``__post_init__``: msgspec turns the error into a
    validation error at the message's path.
    """
    if value is not None:
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"'{field}' must be an ISO date (YYYY-MM-DD), got {value!r}") from None
