"""``jiahe replay`` over files: the engine alone, JSONL in, lifecycle records out.

One loop serves the CLI and ``jiahe bench``, so the benchmark measures exactly
what users run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

import orjson

from rules.replay import Replay

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
    with its line number and reason; the counts live on ``runner.counts``.
    """
    written = 0
    feed_line, write = runner.feed_line, out.write
    for number, line in enumerate(lines, start=1):
        if not line or line.isspace():  # ``not line.strip()`` without copying every line
            continue
        decoded, outcome = feed_line(line)
        if outcome is None or outcome.status == "rejected":
            if rejects is not None:
                reason = outcome.reason if outcome else decoded.reason  # type: ignore[union-attr]
                rejects.write(orjson.dumps({"line": number, "reason": reason,
                                            "raw": line.decode("utf-8", "replace")}) + b"\n")
            continue
        records = outcome.records
        for record in records:
            write(orjson.dumps(record, option=_ONE_LINE))
        written += len(records)
    for record in runner.finish(as_of):
        write(orjson.dumps(record, option=_ONE_LINE))
        written += 1
    return written

