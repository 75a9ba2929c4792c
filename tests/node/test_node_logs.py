"""The node's log formatting ([08] item 7): one record, one line, whatever a peer sent."""

from __future__ import annotations

import logging

from privfin.node.logs import EscapingFormatter, escape_control, peer_text


def test_formatter_keeps_each_record_on_one_line() -> None:
    fmt = EscapingFormatter("%(levelname)s %(name)s: %(message)s")
    forged = "x\n2026-01-01 00:00:00 INFO privfin.node.audit: forged\r\x1b[2K\u2028end"
    record = logging.LogRecord(
        "privfin.node", logging.WARNING, __file__, 1, "got %s", (forged,), None
    )
    line = fmt.format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    assert line == "WARNING privfin.node: got " + escape_control(forged)
    assert "\\x0a2026-01-01" in line


def test_peer_text_is_printable_ascii_and_capped() -> None:
    text = peer_text("a\nb\u00e9\x7f" + "z" * 500)
    assert len(text) == 200 and text.isascii() and text.isprintable()
    assert text.startswith("a\\nb\\xe9\\x7f")
    assert peer_text(7) == ""  # not a string: nothing
