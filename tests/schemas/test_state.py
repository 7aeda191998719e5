"""State records: msgpack with a schema version, each field checked on the way in."""

from __future__ import annotations

import msgpack
import pytest

from schemas import SCHEMA_VERSION
from schemas.errors import SchemaError
from schemas.state import (
    AdmissionSet,
    CampaignStored,
    CeilingRaised,
    ClaimTaken,
    CodesIssued,
    CounterKind,
    MessageSet,
    RestoreStarted,
    RoomOpened,
    RoomStateSet,
    RoomStored,
    decode_state,
)

RECORDS = [
    CampaignStored("flu", '{"name": "flu"}'),
    RoomStored("demo", "flu", 1.5, 10.0, 100, 600, 600, 3600, 0, "manual", 0),
    RoomStateSet("demo", "paused"),
    AdmissionSet("demo", rate_per_s=2.5, admission_mode="auto"),
    MessageSet("demo", '{"de": null, "en": "Doors open at nine"}'),
    MessageSet("demo", None),
    RoomOpened("demo", "ab" * 16, 42, 1.5),
    CeilingRaised("demo", CounterKind.POST, 1200),
    CodesIssued("flu", "80plus", ("a" * 64, "b" * 64)),
    ClaimTaken("flu", "code:" + "c" * 64, "bk_1", 1.0, 2.0),
    RestoreStarted("r1", 3.0),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.TYPE)
def test_every_record_comes_back_as_written(record: object) -> None:
    assert decode_state(record.pack()) == record  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "ceiling_raised", "room": "demo", "kind": "vip", "ceiling": 3},
        {"type": "ceiling_raised", "room": "demo", "kind": "post", "ceiling": -1},
        {
            "type": "room_opened",
            "room": "demo",
            "seed": "x",
            "prequeue_size": 1,
            "opened_at_s": "1",
        },
        {"type": "codes_issued", "campaign": "flu", "group": "g", "hashes": [1, 2]},
        {"type": "claim_taken", "campaign": "flu", "identity": "i", "booking_id": "b"},
        {"type": "no_such_record"},
    ],
)
def test_malformed_records_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(SchemaError):
        decode_state(msgpack.packb({"v": SCHEMA_VERSION, **fields}))


def test_another_schema_version_is_refused() -> None:
    data = msgpack.packb({**RoomStateSet("demo", "open").to_map(), "v": SCHEMA_VERSION + 1})
    with pytest.raises(SchemaError):
        decode_state(data)
