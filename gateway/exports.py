"""CSV exports for operators: appointment lists and access-code letters.

Appointment lists stream from the read model a page at a time (``gateway.readmodel``):
a campaign's million appointments do not pass through the gateway's memory at once.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web

from gateway.readmodel import APPOINTMENT_COLUMNS, ReadModel

CODE_COLUMNS = ("code", "group", "campaign", "letter")
LETTER = (
    "Dear citizen, you are invited to book your vaccination ({title}). "
    "Book online or by phone with your personal access code {code}. "
    "It is valid for one booking of both doses."
)


_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


def _filename(filename: str) -> str:
    """Letters, digits, dot, dash and underscore kept, the rest ``_``: it goes into a header."""
    return _UNSAFE_IN_FILENAME.sub("_", filename)


def _disposition(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{_filename(filename)}"'}


def csv_response(filename: str, rows: Iterable[Sequence[Any]], status: int = 200) -> web.Response:
    """``rows`` as a CSV download named ``filename``."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return web.Response(
        status=status, text=out.getvalue(), content_type="text/csv", headers=_disposition(filename)
    )


STREAM_ROWS = 1000  # rows written to the client at a time


async def csv_stream(
    request: web.Request, filename: str, rows: AsyncIterator[Sequence[Any]]
) -> web.StreamResponse:
    """``rows`` as a CSV download named ``filename``, written as they come (check the
    request before: once the first rows are sent, the status is 200)."""
    response = web.StreamResponse(headers=_disposition(filename))
    response.content_type = "text/csv"
    response.charset = "utf-8"
    await response.prepare(request)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    count = 0
    async for row in rows:
        writer.writerow(row)
        count += 1
        if count % STREAM_ROWS == 0:
            await response.write(out.getvalue().encode())
            out.seek(0)
            out.truncate()
    await response.write(out.getvalue().encode())
    await response.write_eof()
    return response


async def appointment_rows(
    model: ReadModel, campaign: str, center: str | None, day: str | None
) -> AsyncIterator[Sequence[Any]]:
    """A header, then one row per confirmed appointment, by center, start and dose."""
    yield APPOINTMENT_COLUMNS
    async for row in model.appointments(campaign, center, day):
        yield row


def code_letters(
    public: Mapping[str, Any], group: str, codes: Iterable[str]
) -> Iterator[Sequence[str]]:
    """A header, then one row per code with the letter text a mail house prints."""
    yield CODE_COLUMNS
    title = str(public.get("title") or public.get("name", ""))
    name = str(public.get("name", ""))
    for code in codes:
        yield (code, group, name, LETTER.format(title=title, code=code))
