"""Campaign documents for demos, load tests and tests (valid for ``parse_campaign``).

``demo_campaign`` is a state-wide launch modelled on Baden-Württemberg: 15
counties (Stadtkreise and Landkreise), 28 vaccination centers, three vaccines
with their dose intervals and 13 weeks of opening hours, about 210,000 slot
places. The names follow the real places; the venues and addresses are
plausible, not an official list. ``small_campaign`` gives a few centers whose
number of pairs is known exactly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from schemas.campaign import MAX_CAPACITY, MAX_CENTERS

DEMO_WEEKS = 13  # long enough for dose 2 of vaxzevria (63-84 days after dose 1)
DEMO_WEEKDAYS = [0, 1, 2, 3, 4, 5]  # Monday to Saturday
DEMO_TIMEZONE = "Europe/Berlin"

VACCINES: tuple[tuple[str, str, int, int], ...] = (
    ("comirnaty", "Comirnaty (BioNTech/Pfizer)", 21, 42),
    ("spikevax", "Spikevax (Moderna)", 28, 42),
    ("vaxzevria", "Vaxzevria (AstraZeneca)", 63, 84),
)

COUNTIES: tuple[tuple[str, str], ...] = (
    ("stuttgart", "Stuttgart"),
    ("karlsruhe", "Karlsruhe"),
    ("mannheim", "Mannheim"),
    ("freiburg", "Freiburg im Breisgau"),
    ("heidelberg", "Heidelberg"),
    ("ulm", "Ulm"),
    ("esslingen", "Landkreis Esslingen"),
    ("ludwigsburg", "Landkreis Ludwigsburg"),
    ("rems-murr", "Rems-Murr-Kreis"),
    ("boeblingen", "Landkreis Böblingen"),
    ("rhein-neckar", "Rhein-Neckar-Kreis"),
    ("ortenau", "Ortenaukreis"),
    ("konstanz", "Landkreis Konstanz"),
    ("tuebingen", "Landkreis Tübingen"),
    ("ravensburg", "Landkreis Ravensburg"),
)

# Slot length in minutes and places per slot of a center's main vaccine, by size.
SIZES: dict[str, tuple[int, int]] = {"xl": (15, 8), "l": (15, 4), "m": (30, 3), "s": (30, 2)}
SECOND_LINE = (30, 2)  # the smaller line of a center's second vaccine

# (id, county, name, address, size, vaccines: main first)
CENTERS: tuple[tuple[str, str, str, str, str, tuple[str, ...]], ...] = (
    ("stuttgart-messe", "stuttgart", "Zentrales Impfzentrum Messe Stuttgart",
     "Messepiazza 1, 70629 Stuttgart", "xl", ("comirnaty", "spikevax")),
    ("stuttgart-liederhalle", "stuttgart", "Kreisimpfzentrum Liederhalle",
     "Berliner Platz 1, 70174 Stuttgart", "l", ("comirnaty",)),
    ("stuttgart-cannstatt", "stuttgart", "Impfzentrum Bad Cannstatt",
     "Mercedesstraße 50, 70372 Stuttgart", "m", ("vaxzevria",)),
    ("karlsruhe-schwarzwaldhalle", "karlsruhe", "Zentrales Impfzentrum Schwarzwaldhalle",
     "Festplatz 9, 76137 Karlsruhe", "l", ("comirnaty", "vaxzevria")),
    ("karlsruhe-durlach", "karlsruhe", "Impfzentrum Durlach",
     "Pfinztalstraße 60, 76227 Karlsruhe", "s", ("spikevax",)),
    ("mannheim-maimarkt", "mannheim", "Zentrales Impfzentrum Maimarkthalle",
     "Xaver-Fuhr-Straße 101, 68163 Mannheim", "l", ("comirnaty", "spikevax")),
    ("mannheim-neckarstadt", "mannheim", "Impfzentrum Neckarstadt",
     "Mittelstraße 19, 68169 Mannheim", "s", ("comirnaty",)),
    ("freiburg-messe", "freiburg", "Zentrales Impfzentrum Messe Freiburg",
     "Europaplatz 1, 79108 Freiburg im Breisgau", "l", ("comirnaty", "vaxzevria")),
    ("freiburg-wiehre", "freiburg", "Impfzentrum Wiehre",
     "Talstraße 4, 79102 Freiburg im Breisgau", "s", ("spikevax",)),
    ("heidelberg-phv", "heidelberg", "Zentrales Impfzentrum Patrick-Henry-Village",
     "Grasweg 1, 69124 Heidelberg", "m", ("comirnaty", "spikevax")),
    ("ulm-messe", "ulm", "Zentrales Impfzentrum Messe Ulm",
     "Böfinger Straße 50, 89073 Ulm", "m", ("comirnaty", "vaxzevria")),
    ("esslingen-neckarforum", "esslingen", "Kreisimpfzentrum Neckar Forum",
     "Ulmer Straße 1, 73728 Esslingen am Neckar", "m", ("comirnaty",)),
    ("nuertingen-k3n", "esslingen", "Impfzentrum Nürtingen K3N",
     "Heiligkreuzstraße 4, 72622 Nürtingen", "s", ("spikevax",)),
    ("ludwigsburg-arena", "ludwigsburg", "Kreisimpfzentrum MHPArena",
     "Schwieberdinger Straße 30, 71636 Ludwigsburg", "m", ("comirnaty", "spikevax")),
    ("bietigheim-bissingen", "ludwigsburg", "Impfzentrum Bietigheim-Bissingen",
     "Pforzheimer Straße 1, 74321 Bietigheim-Bissingen", "s", ("comirnaty",)),
    ("vaihingen-enz", "ludwigsburg", "Impfzentrum Vaihingen an der Enz",
     "Stuttgarter Straße 30, 71665 Vaihingen an der Enz", "s", ("vaxzevria",)),
    ("waiblingen", "rems-murr", "Kreisimpfzentrum Waiblingen",
     "Alter Postplatz 15, 71332 Waiblingen", "m", ("comirnaty",)),
    ("schorndorf", "rems-murr", "Impfzentrum Barbara-Künkelin-Halle",
     "Künkelinstraße 33, 73614 Schorndorf", "s", ("spikevax", "vaxzevria")),
    ("sindelfingen-glaspalast", "boeblingen", "Kreisimpfzentrum Glaspalast",
     "Hohenzollernstraße 25, 71067 Sindelfingen", "m", ("comirnaty", "spikevax")),
    ("herrenberg", "boeblingen", "Impfzentrum Herrenberg",
     "Seestraße 2, 71083 Herrenberg", "s", ("comirnaty",)),
    ("sinsheim", "rhein-neckar", "Kreisimpfzentrum Sinsheim",
     "Neulandstraße 6, 74889 Sinsheim", "m", ("comirnaty",)),
    ("weinheim", "rhein-neckar", "Impfzentrum Weinheim",
     "Breslauer Straße 20, 69469 Weinheim", "s", ("comirnaty", "vaxzevria")),
    ("schwetzingen", "rhein-neckar", "Impfzentrum Schwetzingen",
     "Zeyherstraße 1, 68723 Schwetzingen", "s", ("spikevax",)),
    ("offenburg-messe", "ortenau", "Kreisimpfzentrum Messe Offenburg",
     "Schutterwälder Straße 3, 77656 Offenburg", "m", ("comirnaty", "spikevax")),
    ("lahr", "ortenau", "Impfzentrum Lahr",
     "Rheinstraße 1, 77933 Lahr/Schwarzwald", "s", ("vaxzevria",)),
    ("singen", "konstanz", "Kreisimpfzentrum Singen",
     "Hohgarten 4, 78224 Singen (Hohentwiel)", "m", ("comirnaty", "vaxzevria")),
    ("tuebingen-arena", "tuebingen", "Kreisimpfzentrum Paul-Horn-Arena",
     "Europastraße 50, 72072 Tübingen", "m", ("comirnaty", "spikevax")),
    ("ravensburg-oberschwabenhalle", "ravensburg", "Kreisimpfzentrum Oberschwabenhalle",
     "Parkstraße 25, 88212 Ravensburg", "m", ("comirnaty", "vaxzevria")),
)  # fmt: skip


def demo_campaign(first_day: dt.date) -> dict[str, Any]:
    """The Baden-Württemberg-like demo campaign, opening on ``first_day`` (deterministic)."""
    last_day = first_day + dt.timedelta(weeks=DEMO_WEEKS, days=-1)
    schedules = []
    for center_id, _, _, _, size, vaccines in CENTERS:
        for i, vaccine in enumerate(vaccines):
            every_min, capacity = SIZES[size] if i == 0 else SECOND_LINE
            schedules.append(
                {
                    "center": center_id,
                    "vaccine": vaccine,
                    "from": first_day.isoformat(),
                    "to": last_day.isoformat(),
                    "weekdays": DEMO_WEEKDAYS,
                    "open": "08:00",
                    "close": "18:00",
                    "every_min": every_min,
                    "capacity": capacity,
                }
            )
    return {
        "title": "COVID-19-Impfkampagne Baden-Württemberg (Demo)",
        "timezone": DEMO_TIMEZONE,
        "hold_s": 600,
        "vaccines": [
            {"id": v, "name": name, "min_days": lo, "max_days": hi} for v, name, lo, hi in VACCINES
        ],
        "counties": [{"id": c, "name": name} for c, name in COUNTIES],
        "centers": [
            {"id": c, "name": name, "county": county, "address": address, "vaccines": list(vs)}
            for c, county, name, address, _, vs in CENTERS
        ],
        "schedules": schedules,
    }


SMALL_DOSE_INTERVAL_DAYS = 21


def small_campaign(
    first_day: dt.date, counties: int = 2, centers_per_county: int = 1, places: int = 5
) -> dict[str, Any]:
    """A campaign that can form exactly ``places`` pairs per center.

    One vaccine (comirnaty, 21-42 days). Each center has one slot with ``places``
    places on ``first_day`` at 09:00 (dose 1) and one on ``first_day`` + 21 days
    (dose 2), so the campaign holds ``counties * centers_per_county * places``
    pairs in all. Counties are ``county-1``...; centers ``county-1-center-1``...
    """
    if counties < 1 or centers_per_county < 1 or counties * centers_per_county > MAX_CENTERS:
        raise ValueError(f"need 1 to {MAX_CENTERS} centers, got {counties}x{centers_per_county}")
    if not 1 <= places <= MAX_CAPACITY:
        raise ValueError(f"places must be 1..{MAX_CAPACITY}, got {places}")
    dose2_day = first_day + dt.timedelta(days=SMALL_DOSE_INTERVAL_DAYS)
    centers, slots = [], []
    for k in range(1, counties + 1):
        for c in range(1, centers_per_county + 1):
            center_id = f"county-{k}-center-{c}"
            centers.append(
                {
                    "id": center_id,
                    "name": f"Impfzentrum {k}.{c}",
                    "county": f"county-{k}",
                    "address": f"Hauptstraße {c}, 7{k:04d} Kreisstadt {k}",
                    "vaccines": ["comirnaty"],
                }
            )
            for day in (first_day, dose2_day):
                slots.append(
                    {
                        "center": center_id,
                        "vaccine": "comirnaty",
                        "start": f"{day.isoformat()}T09:00",
                        "capacity": places,
                    }
                )
    return {
        "title": "Small test campaign",
        "timezone": DEMO_TIMEZONE,
        "hold_s": 600,
        "vaccines": [
            {
                "id": "comirnaty",
                "name": "Comirnaty (BioNTech/Pfizer)",
                "min_days": SMALL_DOSE_INTERVAL_DAYS,
                "max_days": 42,
            }
        ],
        "counties": [
            {"id": f"county-{k}", "name": f"Landkreis {k}"} for k in range(1, counties + 1)
        ],
        "centers": centers,
        "slots": slots,
    }
