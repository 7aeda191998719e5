"""Log records whose arguments cannot start a line of their own."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from fairq import safelog
from fairq.safelog import EscapingRecordFactory, escape


@pytest.mark.parametrize(
    "text,escaped",
    [
        ("plain text, ünïcode € and spaces", "plain text, ünïcode € and spaces"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("line\u2028separator", "line\\u2028separator"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("tab\there", "tab\\there"),
        ("undecodable \udcff\udcfe", "undecodable \\udcff\\udcfe"),
        ("right-to-left \u202e override", "right-to-left \\u202e override"),
    ],
)
def test_escape_writes_non_printable_characters_as_escapes(text: str, escaped: str) -> None:
    assert escape(text) == escaped
    assert escape(text).isprintable()


@pytest.fixture
def escaping() -> Iterator[None]:
    """The escaping factory for one test, whatever the process had before."""
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(EscapingRecordFactory(previous))
    try:
        yield
    finally:
        logging.setLogRecordFactory(previous)


class Shouty:
    def __str__(self) -> str:
        return "str\nFORGED"

    def __repr__(self) -> str:
        return "repr\nFORGED"


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.getLogger("test").makeRecord("test", logging.INFO, "f", 1, msg, args, None)


def test_every_argument_is_escaped_numbers_keep_their_formats(escaping: None) -> None:
    made = record("%s %r %s %d %.1f %s", "a\nb", "c\rd", Shouty(), 7, 2.25, None)
    assert made.getMessage() == "a\\nb 'c\\rd' str\\nFORGED 7 2.2 None"
    assert record("%r", Shouty()).getMessage() == "repr\\nFORGED"


def test_named_arguments_are_escaped(escaping: None) -> None:
    made = record("%(path)s took %(ms)d ms", {"path": "/x\n/y", "ms": 5})
    assert made.getMessage() == "/x\\n/y took 5 ms"


def test_a_message_formatted_before_it_is_logged_is_escaped(escaping: None) -> None:
    path = "/x\nFORGED"
    assert record(f"GET {path} 404").getMessage() == "GET /x\\nFORGED 404"


def test_install_wraps_the_factory_once() -> None:
    previous = logging.getLogRecordFactory()
    try:
        safelog.install()
        installed = logging.getLogRecordFactory()
        safelog.install()
        assert logging.getLogRecordFactory() is installed
        assert isinstance(installed, EscapingRecordFactory)
        assert record("%s", "x\ny").getMessage() == "x\\ny"
    finally:
        logging.setLogRecordFactory(previous)
