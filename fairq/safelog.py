"""Log lines that client input cannot forge: every log record is escaped when it is made.

A path, a header or a body field can carry a newline (``%0a`` in a path arrives
decoded), a carriage return, an ANSI escape or a Unicode line separator. Written into
a log line as it is, it starts a line of the attacker's choosing: a forged record for
whoever reads the log, or for a tool that parses it. Escaping at each call that logs
client input would need every such call to remember; this module escapes *every*
record instead, once, when it is made (``logging.setLogRecordFactory``), so a call
written tomorrow is covered too and every handler (the process's stderr, pytest's
``caplog``) sees the same text.

What is escaped: the record's arguments, where client input goes (ruff's ``G`` rules
refuse f-strings, ``%`` and ``+`` in the project's logging calls), and its message
template too, for code that formats before it logs (aiohttp's access log does: the
gateway runs without it). Non-printable characters (``str.isprintable``: controls,
line and paragraph separators, format characters, lone surrogates from undecodable
bytes) are written as Python escapes (``\\n``, ``\\x1b``, ``\\u2028``, ``\\udcff``);
printable text, numbers and ``None`` pass as they are, so ``%d`` and ``%.1f`` keep
working, and other objects are escaped as ``%s`` and ``%r`` render them. A record's
message is one line.

Not covered: the exception text of a traceback (``exc_info``). Exceptions that carry
client input in their message (``SchemaError``, ``ApiError``) are answered, never
logged with a traceback, and their messages quote input with ``repr``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from numbers import Number
from typing import Any


def escape(text: str) -> str:
    """``text`` with every non-printable character written as its Python escape."""
    if text.isprintable():  # nearly always: one pass in C
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class Escaped:
    """An object as a log argument: ``%s``, ``%r`` and ``format`` render it escaped."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return escape(str(self.value))

    def __repr__(self) -> str:
        return escape(repr(self.value))

    def __format__(self, spec: str) -> str:
        return escape(format(self.value, spec))


def escaped_arg(value: Any) -> Any:
    """One log argument, safe to put in a line: printable text, numbers and None as they
    are; anything else rendered escaped (a string too, so that ``%r`` of it is its
    ``repr``, not the ``repr`` of its escaped text)."""
    if (
        value is None
        or isinstance(value, Number)
        or (isinstance(value, str) and value.isprintable())
    ):
        return value
    return Escaped(value)


def escaped_args(args: Any) -> Any:
    """A record's ``args``: a tuple, or the one mapping of ``%(name)s`` templates."""
    if isinstance(args, Mapping):
        return {key: escaped_arg(value) for key, value in args.items()}
    if isinstance(args, tuple):
        return tuple(escaped_arg(value) for value in args)
    return args


class EscapingRecordFactory:
    """A log record factory that escapes the arguments of what ``inner`` makes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.inner(*args, **kwargs)
        if record.args:
            record.args = escaped_args(record.args)
        if isinstance(record.msg, str) and not record.msg.isprintable():
            record.msg = escape(record.msg)
        return record


def install() -> None:
    """Escape the arguments of every log record this process makes (once; idempotent).

    Logging is the process's, so this is too: whatever serves client requests calls it
    (``gateway.app.create_app``), and other code in the process is escaped as well,
    which costs it nothing but an ``isprintable`` per string argument.
    """
    current = logging.getLogRecordFactory()
    if not isinstance(current, EscapingRecordFactory):
        logging.setLogRecordFactory(EscapingRecordFactory(current))
