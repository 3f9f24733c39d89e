"""Soak test of the Kafka runtime: a steady stream for a long time, memory and lag watched.

``python -m bench.soak --minutes 30 --rate 2000 [--bootstrap HOST:PORT]`` (or
``jiahe soak``) starts a private broker (unless ``--bootstrap``), one ``jiahe worker``
subprocess on a fresh, uniquely prefixed topic set, and a publisher thread that sends
realistic sample lines (``events.sample``: visits, petitions, late bursts, duplicates,
malformed lines) at a steady rate. Every ``--interval`` seconds it samples the worker's
resident memory (``VmRSS``), the consumer lag (end offsets − committed offsets of the
worker's group) and the lifecycle output (records on the warnings topic).

Why these bounds: a stream processor that runs for months fails slowly — a cache that
never evicts, a per-household structure that only grows, a consumer that falls a little
further behind every minute. Thirty minutes at the target rate makes such a slope
visible. After a warm-up (state tables, allocator arenas and caches fill) the RSS may
not grow more than ``--max-memory-growth`` (default 20 %), and the lag must stay under
``--max-lag-seconds`` of input at the target rate and drain once publishing stops.

Exit status: 0 all bounds held; 1 a bound broke (memory, lag, drain); 2 the worker or
the broker failed; 3 the publisher could not sustain the requested rate (then the run
did not test what it claims, which is reported instead of being passed off).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from devtools import kafka_local
from events.sample import StreamSpec, generate
from streams.kafka.settings import Topics
from streams.kafka.worker import create_topic_set

ROOT = Path(__file__).resolve().parents[1]
EXIT_OK, EXIT_BOUND, EXIT_FAILED, EXIT_RATE = 0, 1, 2, 3


@dataclass(frozen=True)
class SoakSettings:
    minutes: float = 30.0
    rate: int = 2000
    bootstrap: str | None = None
    partitions: int = 6
    interval_s: float = 10.0
    #: Seconds before the memory baseline is taken (default: 20 % of the run, ≥ 30 s).
    warmup_s: float | None = None
    max_memory_growth: float = 0.20
    max_lag_seconds: float = 60.0
    #: Seconds the worker gets to drain the lag once publishing stops.
    drain_s: float = 120.0
    #: Least fraction of ``rate`` the publisher must achieve for the run to count.
    min_rate_fraction: float = 0.9
    households: int = 20_000
    seed: int = 2026
    workdir: Path | None = None

    @property
    def duration_s(self) -> float:
        return self.minutes * 60.0

    @property
    def warmup(self) -> float:
        if self.warmup_s is not None:
            return self.warmup_s
        return max(30.0, 0.2 * self.duration_s)

    @property
    def max_lag(self) -> int:
        return int(self.rate * self.max_lag_seconds)


@dataclass
class Sample:
    """One observation; ``t_s`` is seconds since publishing started."""

    t_s: float
    published: int
    rss_kb: int
    end_offset: int
    committed: int
    lag: int
    lifecycle: int
    dead_letters: int


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    exit_code: int = EXIT_OK
    figures: dict[str, Any] = field(default_factory=dict)


def judge(samples: list[Sample], settings: SoakSettings, drained_in_s: float | None,
          published: int, publish_s: float) -> Verdict:
    """Pure: the bounds applied to the samples (tested on its own, with made-up series)."""
    verdict = Verdict()
    after = [s for s in samples if s.t_s >= settings.warmup]
    achieved = published / publish_s if publish_s > 0 else 0.0
    figures: dict[str, Any] = {"achieved_rate": round(achieved, 1), "published": published}
    if after:
        baseline = after[0].rss_kb
        peak = max(s.rss_kb for s in after)
        growth = (peak - baseline) / baseline if baseline else 0.0
        figures.update(rss_baseline_kb=baseline, rss_peak_kb=peak,
                       rss_growth=round(growth, 4),
                       lag_max_after_warmup=max(s.lag for s in after),
                       lag_median_after_warmup=int(statistics.median(s.lag for s in after)))
        if growth > settings.max_memory_growth:
            verdict.problems.append(
                f"memory grew {growth:.1%} after warm-up ({baseline} → {peak} kB), "
                f"bound {settings.max_memory_growth:.0%}")
        if figures["lag_max_after_warmup"] > settings.max_lag:
            verdict.problems.append(
                f"lag reached {figures['lag_max_after_warmup']} events after warm-up, bound "
                f"{settings.max_lag} ({settings.max_lag_seconds:.0f} s of input)")
    else:
        verdict.problems.append("no sample after the warm-up: run longer or shorten --warmup")
    figures["drained_in_s"] = drained_in_s
    if drained_in_s is None:
        verdict.problems.append(f"lag did not drain within {settings.drain_s:.0f} s "
                                "after publishing stopped")
    verdict.figures = figures
    if verdict.problems:
        verdict.exit_code = EXIT_BOUND
    elif achieved < settings.min_rate_fraction * settings.rate:
        verdict.problems.append(
            f"publisher sustained {achieved:.0f} events/s, below "
            f"{settings.min_rate_fraction:.0%} of {settings.rate}: the run does not count")
        verdict.exit_code = EXIT_RATE
    return verdict


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in kB (``VmRSS``; 0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class Publisher(threading.Thread):
    """Sends sample lines at a steady rate (token bucket, 20 ms ticks), keyed by household."""

    def __init__(self, bootstrap: str, topic: str, settings: SoakSettings) -> None:
        super().__init__(name="soak-publisher", daemon=True)
        self.bootstrap, self.topic, self.settings = bootstrap, topic, settings
        self.sent = 0
        self.started_at = 0.0
        self.stopped_at = 0.0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def lines(self) -> Iterator[bytes]:
        # Event time ends now and spans 60 days: rule windows and deadlines are exercised
        # by the wall-clock worker as they would be by a live deployment.
        end = datetime.now(timezone(timedelta(hours=8))).replace(microsecond=0)
        total = int(self.settings.rate * (self.settings.duration_s + 60)) + 1
        spec = StreamSpec(events=total, households=self.settings.households,
                          seed=self.settings.seed, start=end - timedelta(days=60), end=end)
        for line in generate(spec):
            yield line.text.encode()

    def run(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=20,
                                 batch_size=256 * 1024)
        try:
            source = self.lines()
            self.started_at = time.monotonic()
            while not self._stop_event.is_set():
                due = int((time.monotonic() - self.started_at) * self.settings.rate)
                # A publisher that fell behind catches up in ticks, and stops when told:
                # the run's length is the settings', not the backlog's.
                for _ in range(min(due - self.sent, self.settings.rate // 10 + 1)):
                    value = next(source)
                    producer.send(self.topic, key=_household_key(value), value=value)
                    self.sent += 1
                self._stop_event.wait(0.02)
            producer.flush()
        except BaseException as exc:  # reported by the main loop, never swallowed
            self.error = exc
        finally:
            self.stopped_at = time.monotonic()
            producer.close()

    def stop(self) -> None:
        self._stop_event.set()


def _household_key(value: bytes) -> bytes | None:
    try:
        household = orjson.loads(value).get("household_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return household.encode() if isinstance(household, str) else None


class Probe:
    """End offsets, committed offsets and output counts, from one client pair."""

    def __init__(self, bootstrap: str, topics: Any, group: str) -> None:
        from kafka import KafkaConsumer
        from kafka.admin import KafkaAdminClient

        self.topics, self.group = topics, group
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def _ends(self, topic: str) -> dict[Any, int]:
        from kafka import TopicPartition

        parts = [TopicPartition(topic, p)
                 for p in sorted(self.consumer.partitions_for_topic(topic) or ())]
        return dict(self.consumer.end_offsets(parts)) if parts else {}

    def measure(self) -> tuple[int, int, int, int]:
        """(events end offset, committed, warnings end offset, dlq end offset), summed."""
        ends = self._ends(self.topics.events)
        try:
            offsets = self.admin.list_group_offsets(self.group).get(self.group) or {}
        except Exception:  # the group does not exist before the worker's first commit
            offsets = {}
        done = sum(max(0, meta.offset) for tp, meta in offsets.items()
                   if tp.topic == self.topics.events)
        return (sum(ends.values()), done, sum(self._ends(self.topics.warnings).values()),
                sum(self._ends(self.topics.dlq).values()))

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()


@contextmanager
def broker(settings: SoakSettings, workdir: Path) -> Iterator[str]:
    """The given bootstrap, or a private broker started (and stopped) here."""
    if settings.bootstrap:
        yield settings.bootstrap
        return

    data = workdir / "kafka"
    info = kafka_local.start(data)
    try:
        yield info.bootstrap
    finally:
        kafka_local.stop(data)


def start_worker(bootstrap: str, prefix: str, group: str, workdir: Path) -> subprocess.Popen[bytes]:
    """``jiahe worker`` on the wall clock (a live deployment), its output in worker.log."""
    log = (workdir / "worker.log").open("ab")
    cmd = [sys.executable, "-m", "cli.main", "--home", str(workdir / "home"), "worker",
           "--bootstrap", bootstrap, "--topic-prefix", prefix, "--app-id", group,
           "--data-dir", str(workdir / "worker-data"), "--loglevel", "warning"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(settings: SoakSettings, report: Any = None) -> tuple[Verdict, list[Sample]]:
    """The whole soak; ``report(sample)`` is called after every sample (printing)."""
    workdir = settings.workdir or Path(tempfile.mkdtemp(prefix="jiahe-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = f"soak.{uuid.uuid4().hex[:8]}."
    topics, group = Topics.with_prefix(prefix), prefix + "worker"
    samples: list[Sample] = []
    previous = _stop_on_sigterm()
    try:
        return _run(settings, report, workdir, prefix, topics, group, samples)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(settings: SoakSettings, report: Any, workdir: Path, prefix: str, topics: Any,
         group: str, samples: list[Sample]) -> tuple[Verdict, list[Sample]]:

    with broker(settings, workdir) as bootstrap:
        create_topic_set(bootstrap, topics, settings.partitions)
        worker = start_worker(bootstrap, prefix, group, workdir)
        probe = Probe(bootstrap, topics, group)
        publisher = Publisher(bootstrap, topics.events, settings)
        try:
            publisher.start()
            while not publisher.started_at and publisher.is_alive():
                time.sleep(0.05)
            failure = _sample_until(settings.duration_s, settings, worker, publisher,
                                    probe, samples, report)
            publisher.stop()
            publisher.join(timeout=60)
            drained = None if failure else _drain(settings, worker, publisher, probe,
                                                  samples, report)
        finally:
            publisher.stop()
            stop_process(worker)
            probe.close()
    publish_s = (publisher.stopped_at or time.monotonic()) - (publisher.started_at or 0)
    verdict = judge(samples, settings, drained, publisher.sent, publish_s)
    if failure:
        verdict.problems.insert(0, failure)
        verdict.exit_code = EXIT_FAILED
    verdict.figures["workdir"] = str(workdir)
    return verdict, samples


def _stop_on_sigterm() -> Any:
    """SIGTERM unwinds like Ctrl-C, so the worker and the private broker are stopped too.

    Without it a terminated soak left its broker and worker running, orphaned. Returns
    the handler it replaced (None off the main thread, where signals cannot be set).
    """
    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, interrupt)


def _sample_until(duration_s: float, settings: SoakSettings, worker: subprocess.Popen[bytes],
                  publisher: Publisher, probe: Probe, samples: list[Sample],
                  report: Any) -> str | None:
    """Sample every interval until ``duration_s`` of publishing; a failure message or None."""
    next_at = publisher.started_at + settings.interval_s
    end_at = publisher.started_at + duration_s
    while True:
        if worker.poll() is not None:
            return f"worker exited with {worker.returncode} (see worker.log)"
        if publisher.error is not None:
            return f"publisher failed: {publisher.error!r}"
        now = time.monotonic()
        if now >= end_at:
            return None
        time.sleep(max(0.0, min(next_at, end_at) - now))
        if time.monotonic() >= next_at:
            _take(worker, publisher, probe, samples, report)
            next_at += settings.interval_s


def _take(worker: subprocess.Popen[bytes], publisher: Publisher, probe: Probe,
          samples: list[Sample], report: Any) -> Sample:
    end, done, lifecycle, dlq = probe.measure()
    sample = Sample(t_s=round(time.monotonic() - publisher.started_at, 1),
                    published=publisher.sent, rss_kb=rss_kb(worker.pid), end_offset=end,
                    committed=done, lag=max(0, end - done), lifecycle=lifecycle,
                    dead_letters=dlq)
    samples.append(sample)
    if report is not None:
        report(sample)
    return sample


def _drain(settings: SoakSettings, worker: subprocess.Popen[bytes], publisher: Publisher,
           probe: Probe, samples: list[Sample], report: Any) -> float | None:
    """Seconds until the group committed everything published; None if it did not."""
    stopped = time.monotonic()
    while time.monotonic() - stopped < settings.drain_s and worker.poll() is None:
        sample = _take(worker, publisher, probe, samples, report)
        if sample.lag == 0 and sample.end_offset >= publisher.sent:
            return round(time.monotonic() - stopped, 1)
        time.sleep(min(settings.interval_s, 2.0))
    return None
