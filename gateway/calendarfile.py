"""A booking's appointments as an iCalendar file (RFC 5545), for the citizen's calendar.

One VEVENT per dose: UID from the booking id and the dose (the same file downloaded
again updates the same two events), DTSTART in UTC (the appointment's start carries
its offset), LOCATION the center's name and address, text escaped and long lines
folded at 75 octets as the RFC asks. The campaign gives no appointment length, so
there is no DTEND: a calendar shows the start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

PRODID = "-//fairq//waiting room//EN"
LINE_OCTETS = 75  # a content line's length before folding, CRLF not counted
# The file's two texts, the event's title and its description, per language
# (``waitingroom.rooms.LANGUAGES``).
TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "summary": "Impftermin {dose}. Dosis: {vaccine}",
        "description": "{title}. Buchungsnummer: {booking_id}. "
        "Bitte bringen Sie einen Ausweis und diese Buchungsnummer mit.",
    },
    "en": {
        "summary": "Vaccination, dose {dose}: {vaccine}",
        "description": "{title}. Reference: {booking_id}. "
        "Please bring an identity document and this reference.",
    },
}


def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines escaped."""
    out = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return out.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def fold(line: str) -> str:
    """One content line folded into lines of at most 75 octets (3.1), never inside a
    UTF-8 character; continuation lines start with a space."""
    parts: list[str] = []
    current, size, limit = "", 0, LINE_OCTETS
    for char in line:
        octets = len(char.encode("utf-8"))
        if size + octets > limit:
            parts.append(current)
            current, size, limit = " ", 1, LINE_OCTETS
        current += char
        size += octets
    parts.append(current)
    return "\r\n".join(parts)


def utc_stamp(when: dt.datetime) -> str:
    """A DATE-TIME in UTC form (``19980119T070000Z``)."""
    return when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def calendar_file(
    booking_id: str,
    appointments: Iterable[Mapping[str, Any]],
    campaign: Mapping[str, Any],
    language: str,
    now: dt.datetime,
) -> str:
    """The VCALENDAR of a booking's ``appointments`` (as ``BookingView.to_json`` lists
    them), their centers' addresses and vaccines' names from the ``campaign``'s public
    description."""
    texts = TEXTS[language]
    centers = {c["id"]: c for c in campaign.get("centers", [])}
    vaccines = {v["id"]: v.get("name", v["id"]) for v in campaign.get("vaccines", [])}
    title = str(campaign.get("title") or campaign.get("name") or "")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "METHOD:PUBLISH"]
    for appointment in sorted(appointments, key=lambda a: int(a["dose"])):
        center = centers.get(appointment["center"], {})
        place = [appointment.get("center_name") or center.get("name") or appointment["center"]]
        if center.get("address"):
            place.append(center["address"])
        fields = {"dose": appointment["dose"], "booking_id": booking_id, "title": title}
        fields["vaccine"] = vaccines.get(appointment["vaccine"], appointment["vaccine"])
        lines += [
            "BEGIN:VEVENT",
            f"UID:{booking_id}-dose-{appointment['dose']}@fairq",
            f"DTSTAMP:{utc_stamp(now)}",
            f"DTSTART:{utc_stamp(dt.datetime.fromisoformat(appointment['start']))}",
            f"SUMMARY:{escape_text(texts['summary'].format(**fields))}",
            f"LOCATION:{escape_text(', '.join(place))}",
            f"DESCRIPTION:{escape_text(texts['description'].format(**fields))}",
            "STATUS:CONFIRMED",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines)
