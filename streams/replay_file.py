"""``jiahe replay`` over files: the engine alone, JSONL in, lifecycle records out.

One loop serves the CLI and ``jiahe bench``, so the benchmark measures exactly
what users run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

import orjson

from rules.replay import Replay


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
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        decoded, outcome = runner.feed_line(line)
        if outcome is None or outcome.status == "rejected":
            if rejects is not None:
                reason = outcome.reason if outcome else decoded.reason  # type: ignore[union-attr]
                rejects.write(orjson.dumps({"line": number, "reason": reason,
                                            "raw": line.decode("utf-8", "replace")}) + b"\n")
            continue
        for record in outcome.records:
            out.write(orjson.dumps(record) + b"\n")
            written += 1
    for record in runner.finish(as_of):
        out.write(orjson.dumps(record) + b"\n")
        written += 1
    return written
