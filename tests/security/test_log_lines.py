"""Control characters in client-supplied ids cannot forge log lines."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from cli.main import main
from privacy.log_lines import escape_controls, escape_log_lines

FORGED = "hh-1\n2026-12-07 01:00:00 INFO api accepted\x1b[2K\r"


@pytest.fixture
def escaped() -> Iterator[io.StringIO]:
    """A logger writing to a buffer, with the process's record factory escaping."""
    before = logging.getLogRecordFactory()
    escape_log_lines()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.security.forge")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logging.setLogRecordFactory(before)


def test_an_id_with_a_newline_stays_on_its_line(escaped: io.StringIO) -> None:
    logging.getLogger("tests.security.forge").warning("refused event %s", FORGED)
    lines = escaped.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0] == ("WARNING refused event hh-1\\x0a2026-12-07 01:00:00 INFO api accepted"
                        "\\x1b[2K\\x0d")


def test_escaping_keeps_ordinary_text_and_chinese() -> None:
    assert escape_controls("家和 230102001001 hh-7\tend") == "家和 230102001001 hh-7\\x09end"
    assert escape_controls("\x7f\x85\x9f") == "\\x7f\\x85\\x9f"


def test_a_traceback_keeps_its_lines(escaped: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("tests.security.forge").exception("failed for %s", "a\nb")
    text = escaped.getvalue()
    assert "failed for a\\x0ab\nTraceback (most recent call last):" in text


def test_the_command_line_escapes_every_log_line() -> None:
    """Any ``jiahe`` command installs the escaping before it runs."""
    before = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)  # as a fresh process has it
    try:
        result = CliRunner().invoke(main, ["schema", "export", "--help"])
        assert result.exit_code == 0
        record = logging.getLogRecordFactory()("x", logging.INFO, __file__, 1, "%s",
                                               ("a\nb",), None)
        assert record.getMessage() == "a\\x0ab"
    finally:
        logging.setLogRecordFactory(before)
