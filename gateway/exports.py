"""CSV exports for operators: appointment lists and access-code letters."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web

from gateway.bookingviews import BookingView

APPOINTMENT_COLUMNS = ("center", "center_name", "day", "start", "dose", "vaccine", "booking_id")
CODE_COLUMNS = ("code", "group", "campaign", "letter")
LETTER = (
    "Dear citizen, you are invited to book your vaccination ({title}). "
    "Book online or by phone with your personal access code {code}. "
    "It is valid for one booking of both doses."
)


_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


def csv_response(filename: str, rows: Iterable[Sequence[Any]], status: int = 200) -> web.Response:
    """``rows`` as a CSV download named ``filename`` (characters other than letters,
    digits, dot, dash and underscore become ``_``: the name goes into a header)."""
    filename = _UNSAFE_IN_FILENAME.sub("_", filename)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return web.Response(
        status=status,
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def appointment_rows(
    views: Iterable[BookingView], campaign: str, center: str | None, day: str | None
) -> Iterator[Sequence[Any]]:
    """A header, then one row per confirmed appointment, by center, start and dose."""
    yield APPOINTMENT_COLUMNS
    rows = [
        (a.center, a.center_name, a.start[:10], a.start, a.dose, a.vaccine, v.booking_id)
        for v in views
        if v.campaign == campaign and v.state == "confirmed"
        for a in v.appointments
        if (center is None or a.center == center) and (day is None or a.start[:10] == day)
    ]
    yield from sorted(rows)


def code_letters(
    public: Mapping[str, Any], group: str, codes: Iterable[str]
) -> Iterator[Sequence[str]]:
    """A header, then one row per code with the letter text a mail house prints."""
    yield CODE_COLUMNS
    title = str(public.get("title") or public.get("name", ""))
    name = str(public.get("name", ""))
    for code in codes:
        yield (code, group, name, LETTER.format(title=title, code=code))
