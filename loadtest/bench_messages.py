"""What a message costs the allocator: building one, decoding a Book, encoding a Held.

Messages are frozen msgspec Structs (``schemas.message``). The reference, measured in
the same run, is a frozen slots dataclass with the same fields as a Book: CPython
builds it with one ``object.__setattr__`` per field. "decode a Book + encode a Held"
is what the messages cost per answered Book (issue 15's target: at most 1.5 µs). The
last two rows are
msgpack alone on the same messages (the map out of the Book's bytes, the bytes out of
the Held's map): the least any allocator answering a Book with a Held pays for the
wire format, whatever it does in between. Not a test; run it:

    python -m loadtest.bench_messages [--number 200000]
"""

from __future__ import annotations

import argparse
import dataclasses
import timeit
from collections.abc import Callable
from typing import Any

import msgpack
import msgspec

from loadtest.bench_allocator_core import print_header
from schemas.commands import Book, decode_command
from schemas.events import Appointment, Held

BOOK_ARGS = ("cmd-1234567", "bk-1234567", "campaign-x", "person-1234567", "county-3")


def frozen_book_class() -> Callable[..., Any]:
    """A frozen slots dataclass with a Book's fields and defaults."""
    fields = [
        (f.name, Any, dataclasses.field(default=f.default))
        if f.default is not msgspec.NODEFAULT
        else (f.name, Any)
        for f in msgspec.structs.fields(Book)
    ]
    return dataclasses.make_dataclass("FrozenBook", fields, frozen=True, slots=True)


def per_call_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args()
    print_header(__spec__.name if __spec__ else __name__)
    frozen = frozen_book_class()
    book = Book(*BOOK_ARGS)
    packed = book.pack()
    dose = Appointment(1, "c1", "Center One", "vx", "2030-01-01T08:00:00+00:00", "c1/vx/1")
    held = Held(*BOOK_ARGS[:3], 1, 123, "person-1234567", "county-3", (dose, dose), 456)
    held_map = msgpack.unpackb(held.pack())
    rows = [
        ("build a Book (msgspec Struct)", lambda: Book(*BOOK_ARGS)),
        ("build the same as a frozen dataclass (reference)", lambda: frozen(*BOOK_ARGS)),
        ("decode a Book (msgpack bytes -> Book)", lambda: decode_command(packed)),
        ("encode a Held (Held -> msgpack bytes)", held.pack),
        (
            "decode a Book + encode a Held (per answered Book)",
            lambda: (decode_command(packed), held.pack()),
        ),
        ("msgpack alone: unpack the Book's bytes to a dict", lambda: msgpack.unpackb(packed)),
        ("msgpack alone: pack the Held's dict to bytes", lambda: msgpack.packb(held_map)),
    ]
    for label, fn in rows:
        print(f"{label:<52} {per_call_us(fn, args.number):6.2f} µs")


if __name__ == "__main__":
    main()
