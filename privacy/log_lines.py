"""Log lines a client cannot forge.

Ids, org units and reasons in log messages come from clients (an ``event_id`` in a
posted event, a household id in a path). A newline or an ANSI escape in one would
let its sender write a fake line into an operator's log ("… accepted" on a line of
its own) or rewrite the terminal. Every record's message is escaped once, where it
is formatted, so no call site has to remember: control characters (C0, DEL, C1)
become ``\\xNN``; everything else, Chinese included, stays as it is.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """``text`` with each control character written as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class EscapedRecord(logging.LogRecord):
    """A record whose formatted message has its control characters escaped (a
    traceback, kept apart in ``exc_text``, keeps its lines)."""

    def getMessage(self) -> str:  # noqa: N802 - logging's name
        return escape_controls(super().getMessage())


def _escaped_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    return EscapedRecord(*args, **kwargs)


def escape_log_lines() -> None:
    """Make every record of this process escape its message (idempotent)."""
    logging.setLogRecordFactory(_escaped_record)


__all__ = ["EscapedRecord", "escape_controls", "escape_log_lines"]
