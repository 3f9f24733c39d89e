"""Shared pieces of the fault campaigns: the seed, SIGKILL bookkeeping, record keys.

Every campaign draws its kill points from one ``random.Random(seed)``; the seed is
printed and taken from ``$JIAHE_FAULT_SEED`` when set, so a failing campaign can be
re-run with the same kill delays (timings still vary with machine load: the seed fixes
*when* the test pulls the trigger, not what the victim was doing at that instant).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rules.transitions import subject_of, transition_of

ROOT = Path(__file__).resolve().parents[2]
SEED_ENV = "JIAHE_FAULT_SEED"
DEFAULT_SEED = 20261128
KILLS_ENV = "JIAHE_FAULT_KILLS"


def fault_rng(campaign: str) -> tuple[int, random.Random]:
    """The campaign's seeded RNG (the seed is printed; ``-s`` shows it)."""
    seed = int(os.environ.get(SEED_ENV, DEFAULT_SEED))
    print(f"[{campaign}] fault seed {seed} (set {SEED_ENV} to change)")
    return seed, random.Random(f"{campaign}:{seed}")


def kill_count(default: int = 20) -> int:
    """How many SIGKILLs a campaign delivers (``$JIAHE_FAULT_KILLS``, never fewer than 20)."""
    return max(default, int(os.environ.get(KILLS_ENV, default)))


@dataclass
class Kill:
    """One delivered SIGKILL: when (seconds after spawn) and what the victim had done."""

    run: int
    delay_s: float
    mode: str
    before: int
    after: int
    phase: str = ""


@dataclass
class Campaign:
    name: str
    seed: int
    kills: list[Kill] = field(default_factory=list)
    runs_completed: int = 0

    def phases(self) -> Counter[str]:
        return Counter(k.phase for k in self.kills)

    def summary(self) -> str:
        return (f"[{self.name}] seed {self.seed}: {len(self.kills)} SIGKILLs, "
                f"{self.runs_completed} runs completed on their own; phases "
                f"{dict(sorted(self.phases().items()))}")


def sigkill(proc: subprocess.Popen[bytes]) -> bool:
    """SIGKILL ``proc`` (one of ours, by PID); False when it had already exited."""
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def jiahe(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """Run ``jiahe --home HOME ARGS`` to completion; a non-zero exit fails with its output."""
    done = subprocess.run([sys.executable, "-m", "cli.main", "--home", str(home), *args],
                          cwd=ROOT, capture_output=True, timeout=timeout, check=False)
    assert done.returncode == 0, (args, done.stdout.decode()[-3000:],
                                  done.stderr.decode()[-3000:])
    return done


def spawn_jiahe(home: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "cli.main", "--home", str(home), *args],
                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def transition_counts(records: Iterable[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """How often each (subject, transition) occurs — the deduplication key downstream."""
    return Counter((subject_of(r), transition_of(r)) for r in records)


def duplicated_transitions(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], int]:
    return {key: n for key, n in transition_counts(records).items() if n > 1}
