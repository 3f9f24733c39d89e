"""``jiahe replay`` over files: the engine alone, JSONL in, lifecycle records out.

One loop serves the CLI and ``jiahe bench``, so the benchmark measures exactly
what users run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import BinaryIO

import orjson

from rules.replay import Replay
from streams.step import engine_error

log = logging.getLogger("jiahe.replay")

#: ``orjson.dumps(record) + b"\n"`` in one step: the same bytes, one copy fewer.
_ONE_LINE = orjson.OPT_APPEND_NEWLINE


def replay_lines(
    runner: Replay,
    lines: Iterable[bytes],
    out: BinaryIO,
    as_of: int | None = None,
    rejects: BinaryIO | None = None,
) -> int:
    """Feed JSONL lines in order, write lifecycle records; returns how many were written.

    Blank lines are not input. A rejected line goes to ``rejects`` (when given)
    with its line number and reason; the counts live on ``runner.counts``. An
    event the engine raises on is rejected like that (reason ``engine error: …``,
    as the processors dead-letter it, ``streams.step``) and the replay goes on:
    one faulty rule must not cost the rest of the file.
    """
    written = 0
    feed_line, write = runner.feed_line, out.write
    for number, line in enumerate(lines, start=1):
        if not line or line.isspace():  # ``not line.strip()`` without copying every line
            continue
        try:
            decoded, outcome = feed_line(line)
        except Exception as exc:  # the engine raised: a bug in a rule, not bad input
            reason = engine_error(exc)
            log.error("line %d: %s", number, reason, exc_info=True)
            runner.counts.add("rejected", reason)
            if rejects is not None:
                rejects.write(_reject(number, reason, line))
            continue
        if outcome is None or outcome.status == "rejected":
            if rejects is not None:
                why = outcome.reason if outcome else decoded.reason  # type: ignore[union-attr]
                rejects.write(_reject(number, why, line))
            continue
        records = outcome.records
        for record in records:
            write(orjson.dumps(record, option=_ONE_LINE))
        written += len(records)
    for record in runner.finish(as_of):
        write(orjson.dumps(record, option=_ONE_LINE))
        written += 1
    return written



def _reject(number: int, reason: str | None, line: bytes) -> bytes:
    """One line of ``--rejects-out``: the input line number, the reason, the line."""
    return orjson.dumps({"line": number, "reason": reason,
                         "raw": line.decode("utf-8", "replace")}) + b"\n"
