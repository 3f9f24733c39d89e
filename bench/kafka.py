"""Kafka-runtime benchmark: worker throughput, the raw consume ceiling, and latency.

``python -m bench.kafka --events 100000 [--households H] [--bootstrap B] [--workers 1 2]``
(``jiahe bench`` calls :func:`run_kafka` on its one stream)

* **worker events/s** — one (then two) ``jiahe worker`` processes on a pre-published
  stream (events.sample, keyed by household), measured from the consumer group's
  committed offsets: the rate between the first commit seen and the last offset
  committed, so group join and start-up are not counted (they are reported apart);
* **raw ceiling** — plain aiokafka ``getmany`` over the same topic, no processing;
* **latency** — publish→lifecycle-record p50/p99 at a steady 1k events/s, each event a
  visit with an injury on a fresh household (so each raises a warning at once);
* **Faust agent peer** — :mod:`bench.faust_peer` (one idiomatic per-event agent
  with a Faust table) on the same topic, measured exactly like one jiahe worker.

Peak RSS of every worker/peer process is read from ``/proc/PID/status`` (VmHWM) just
before it is stopped.

Starts a private broker unless ``--bootstrap`` is given; prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from devtools import kafka_local
from events.sample import StreamSpec, generate
from streams.kafka.settings import Topics
from streams.kafka.worker import create_topic_set

STREAM_END = "2026-11-20T00:00:00+08:00"


def progress(message: str) -> None:
    print(f"[bench_kafka] {message}", file=sys.stderr, flush=True)


@contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return

    with tempfile.TemporaryDirectory(prefix="jiahe-bench-kafka-") as data:
        info = kafka_local.start(Path(data))
        try:
            yield info.bootstrap
        finally:
            kafka_local.stop(Path(data))


def publish_sample(bootstrap: str, topic: str, events: int, seed: int = 1) -> dict[str, Any]:
    """Publish events.sample lines keyed by household; returns count and rate."""
    spec = StreamSpec(events=events, households=max(1000, events // 5), seed=seed)
    return publish_lines(bootstrap, topic, [line.text.encode() for line in generate(spec)])


def publish_lines(bootstrap: str, topic: str, lines: list[bytes]) -> dict[str, Any]:
    """Publish JSONL lines keyed by household (unkeyed when there is none); count and rate."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                             batch_size=512 * 1024, acks="all")
    began = time.perf_counter()
    for value in lines:
        try:
            household = orjson.loads(value).get("household_id")
        except (orjson.JSONDecodeError, AttributeError):
            household = None
        key = household.encode() if isinstance(household, str) else None
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    elapsed = time.perf_counter() - began
    return {"events": len(lines), "publish_events_per_s": round(len(lines) / elapsed)}


async def _raw_ceiling(bootstrap: str, topic: str, partitions: int, total: int) -> float:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        seen = 0
        began = time.perf_counter()
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(records) for records in batch.values())
        return seen / (time.perf_counter() - began)
    finally:
        await consumer.stop()


def committed_total(admin: KafkaAdminClient, group: str) -> int:
    try:
        offsets = admin.list_group_offsets(group).get(group) or {}
    except Exception:  # the group does not exist yet
        return 0
    return sum(max(0, meta.offset) for meta in offsets.values())


def worker_command(bootstrap: str, prefix: str, group: str, data_dir: Path,
                   extra: list[str]) -> list[str]:
    """A ``jiahe worker`` process (the Kafka runtime)."""
    return [sys.executable, "-m", "cli.kafka", "--home", str(data_dir.parent),
            "worker", "--bootstrap", bootstrap, "--topic-prefix", prefix, "--app-id", group,
            "--data-dir", str(data_dir), "--session-timeout", "10", "--loglevel", "info",
            *extra]


def faust_peer_command(bootstrap: str, prefix: str, group: str, data_dir: Path,
                       extra: list[str]) -> list[str]:
    """The idiomatic per-event Faust agent peer (``bench.faust_peer``)."""
    return [sys.executable, "-m", "bench.faust_peer", "--bootstrap", bootstrap,
            "--topic-prefix", prefix, "--app-id", group, "--data-dir", str(data_dir), *extra]


CommandFor = Callable[[str, str, str, Path, list[str]], list[str]]


def start_workers(bootstrap: str, prefix: str, group: str, count: int, workdir: Path,
                  extra: list[str], command: CommandFor = worker_command,
                  ) -> list[subprocess.Popen[bytes]]:
    procs = []
    for n in range(count):
        log = (workdir / f"{group}-{n}.log").open("wb")
        cmd = command(bootstrap, prefix, group, workdir / f"{group}-{n}", extra)
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    return procs


def peak_rss_mb(pid: int) -> float | None:
    """A live process's peak resident set (VmHWM, Linux); None when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> list[float | None]:
    """Stop the processes; returns each one's peak RSS (MB) read just before the signal."""
    peaks = [peak_rss_mb(proc.pid) for proc in procs]
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return peaks


def measure_workers(bootstrap: str, prefix: str, total: int, count: int, workdir: Path,
                    timeout_s: float = 1800, stall_s: float = 120,
                    command: CommandFor = worker_command,
                    label: str = "worker") -> dict[str, Any]:
    """Rate of ``count`` processes over a pre-published topic, from committed offsets.

    ``total``: stop once the group has committed that many (the topic may hold more).

    The same measurement for jiahe's worker and the Faust agent peer: the rate between
    the first commit seen and the moment the group's committed offsets reach ``total``.
    """
    group = f"bench-{label}-{count}w-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    launched = time.perf_counter()
    procs = start_workers(bootstrap, prefix, group, count, workdir, ["--as-of", STREAM_END],
                          command)
    first: tuple[float, int] | None = None
    last_report = launched
    moved = (launched, 0)  # when the committed total last changed, and to what
    try:
        while True:
            now = time.perf_counter()
            done = committed_total(admin, group)
            if first is None and done > 0:
                first = (now, done)
            if done >= total:
                break
            if done != moved[1]:
                moved = (now, done)
            if now - last_report >= 5:
                last_report = now
                progress(f"{count} {label}(s): committed {done}/{total}")
            stalled = now - moved[0] > stall_s
            if stalled or now - launched > timeout_s or any(p.poll() is not None for p in procs):
                log = (workdir / f"{group}-0.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{label} did not finish: committed {done}/{total}\n{log}")
            time.sleep(0.1)
    finally:
        peaks = stop_workers(procs)
        admin.close()
    assert first is not None
    if first[1] < total and now > first[0]:
        steady, basis = (total - first[1]) / (now - first[0]), "between commits"
    else:  # all done by the first commit seen (a small input): start-up included
        steady, basis = total / max(1e-6, now - launched), "wall incl. start-up"
    return {"processes": count, "events": total, "events_per_s": round(steady),
            "rate_basis": basis,
            "first_commit_after_s": round(first[0] - launched, 2),
            "wall_s": round(now - launched, 2), "peak_rss_mb": peaks}


def measure_latency(bootstrap: str, workdir: Path, rate: int, seconds: float,
                    extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """p50/p99 publish→warning.raised at a steady ``rate`` events/s (wall-clock worker).

    Two figures: until a reader has the record (end to end), and until the worker's
    producer stamped it (the record's CreateTime: worker latency without the reader's
    poll). Same machine, same clock.
    """
    prefix = f"bench.lat.{uuid.uuid4().hex[:8]}."
    topics = Topics.with_prefix(prefix)
    create_topic_set(bootstrap, topics, partitions=6)
    procs = start_workers(bootstrap, prefix, f"bench-lat-{uuid.uuid4().hex[:6]}", 1, workdir,
                          list(extra))
    sent: dict[str, float] = {}
    end_to_end: list[float] = []
    to_record: list[float] = []
    total = int(rate * seconds)
    stop = threading.Event()

    def collect() -> None:
        consumer = KafkaConsumer(topics.warnings, bootstrap_servers=bootstrap,
                                 auto_offset_reset="earliest", fetch_max_wait_ms=10,
                                 enable_auto_commit=False)
        try:
            while not stop.is_set() and len(end_to_end) < total:
                for records in consumer.poll(timeout_ms=100).values():
                    arrived = time.time()
                    for record in records:
                        began = sent.get(record.key.decode())
                        if began is not None:
                            end_to_end.append(arrived - began)
                            to_record.append(record.timestamp / 1000 - began)
        finally:
            consumer.close()

    try:
        warm = _wait_worker_ready(bootstrap, topics, procs)
        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
        began = time.perf_counter()
        for n in range(total):
            pause = began + n / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            household, value = _injury_visit(n)
            sent[household] = time.time()
            producer.send(topics.events, key=household.encode(), value=value)
        producer.flush()
        reader.join(timeout=30)
        stop.set()
        producer.close()
    finally:
        peaks = stop_workers(procs)
    end_to_end.sort()
    to_record.sort()
    return {
        "rate_per_s": rate, "events": total, "records": len(end_to_end),
        "p50_ms": _ms(end_to_end, 0.50), "p99_ms": _ms(end_to_end, 0.99),
        "to_record_created_p50_ms": _ms(to_record, 0.50),
        "to_record_created_p99_ms": _ms(to_record, 0.99),
        "worker_ready_after_s": warm,
        "peak_rss_mb": peaks,
    }


def _ms(values: list[float], q: float) -> float:
    return round(_quantile(values, q) * 1000, 1)


def _wait_worker_ready(bootstrap: str, topics: Topics, procs: list[Any]) -> float:
    """Publish probes until one comes back as a record (the worker joined and recovered)."""
    began = time.perf_counter()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(topics.warnings, bootstrap_servers=bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        n = 0
        while time.perf_counter() - began < 120:
            household, value = _injury_visit(-1 - n)
            producer.send(topics.events, key=household.encode(), value=value)
            producer.flush()
            n += 1
            if consumer.poll(timeout_ms=1000):
                return round(time.perf_counter() - began, 2)
            if any(p.poll() is not None for p in procs):
                break
        raise RuntimeError("latency worker never produced a record")
    finally:
        producer.close()
        consumer.close()


def _injury_visit(n: int) -> tuple[str, bytes]:
    household = f"lat-{uuid.uuid4().hex[:12]}-{n}"
    event = {
        "event_id": str(uuid.uuid4()), "type": "screening.visit_recorded",
        "schema_version": 1, "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                           time.gmtime()),
        "org_unit": "230102001001", "household_id": household,
        "data": {"indicators": ["injury_observed"], "notes": ""},
    }
    return household, orjson.dumps(event)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def run_kafka(bootstrap: str, lines: list[bytes], workdir: Path, partitions: int = 6,
              workers: tuple[int, ...] = (1, 2), latency_rate: int = 1000,
              latency_seconds: float = 15.0, faust_peer: bool = True,
              faust_peer_events: int = 0) -> dict[str, Any]:
    """Everything on one pre-published topic: ceiling, workers, the Faust peer, latency.

    The worker runs and the peer each use a fresh consumer group on the same topic, so
    they read the very same messages; the raw ceiling reads them too, in the same run.
    The peer stops after ``faust_peer_events`` (0: all) when the whole stream would take
    it too long; its rate is measured the same way over that prefix.
    """
    prefix = f"bench.{uuid.uuid4().hex[:8]}."
    topics = Topics.with_prefix(prefix)
    create_topic_set(bootstrap, topics, partitions=partitions)
    summary: dict[str, Any] = {"partitions": partitions}
    summary["publish"] = publish_lines(bootstrap, topics.events, lines)
    progress(f"published {summary['publish']}")
    total = summary["publish"]["events"]
    ceiling = asyncio.run(_raw_ceiling(bootstrap, topics.events, partitions, total))
    summary["raw_getmany_events_per_s"] = round(ceiling)
    progress(f"raw getmany {round(ceiling)} events/s")
    summary["worker_runs"] = []
    for count in workers:
        run = measure_workers(bootstrap, prefix, total, count, workdir)
        progress(f"{count} worker(s): {run['events_per_s']} events/s")
        summary["worker_runs"].append(run)
    one = next((r for r in summary["worker_runs"] if r["processes"] == 1), None)
    if one is not None:
        summary["one_worker_vs_ceiling"] = round(one["events_per_s"] / max(ceiling, 1), 3)
    if faust_peer:
        target = min(total, faust_peer_events) if faust_peer_events > 0 else total
        peer = measure_workers(bootstrap, prefix, target, 1, workdir,
                               command=faust_peer_command, label="faust-agent")
        progress(f"faust agent peer: {peer['events_per_s']} events/s")
        summary["faust_agent_peer"] = peer
        if one is not None:
            summary["one_worker_vs_faust_agent"] = round(
                one["events_per_s"] / max(peer["events_per_s"], 1), 2)
    if latency_seconds > 0:
        summary["latency"] = measure_latency(bootstrap, workdir, latency_rate, latency_seconds)
        progress(f"latency {summary['latency']}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--bootstrap", default=os.environ.get("JIAHE_KAFKA_BOOTSTRAP"))
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--latency-rate", type=int, default=1000)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--no-faust-peer", action="store_true")
    parser.add_argument("--households", type=int,
                        help="households in the stream (default: one per ten events, ≥ 1000)")
    args = parser.parse_args(argv)

    households = args.households or max(1000, args.events // 10)
    spec = StreamSpec(events=args.events, households=households, seed=42)
    lines = [line.text.encode() for line in generate(spec)]
    with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory(
        prefix="jiahe-bench-"
    ) as tmp:
        summary = run_kafka(bootstrap, lines, Path(tmp), args.partitions, tuple(args.workers),
                            args.latency_rate, args.latency_seconds, not args.no_faust_peer)
    print(json.dumps({"events": args.events, "households": households, **summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
