"""HTTP benchmark: ingest throughput (batches of 500) and trigger → webhook latency.

``python -m bench.api [--events N]`` starts a server in a subprocess (it owns
chdb) on a temporary home and a webhook receiver in this process, and prints
JSON. Targets: ≥ 5k events/s ingest, p99 trigger → webhook < 1 s.

The API projects into the warehouse lazily (before a read, see ``app.services``),
so ingest alone does not pay for projection. To keep the figure honest the
benchmark also times the first ledger read after the ingest, which projects
all of it, and reports ingest *including* that catch-up as
``ingest_then_read_events_per_s``; the target is judged on that figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from access.users import UserStore
from alerts.egress import ALLOW_ENV
from events.sample import sample_events
from privacy.pseudonym import Pseudonymizer, deployment_secret
from streams.embedded.log import SqliteLog
from streams.embedded.runtime import LOG_FILE, PSEUDONYM_SECRET


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _receiver(arrivals: dict[str, float]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            arrivals.setdefault(body["warning"]["household_key"], time.perf_counter())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(events: int, triggers: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="jiahe-api-bench-"))
    store = UserStore.at_home(home)
    token = store.add("bench", "city_admin", "230100000000")
    store.close()
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "api.server", "--home", str(home),
                             "--port", str(port), "--webhook-poll", "0.2"],
                            env={**os.environ, ALLOW_ENV: "127.0.0.1"})  # the receiver
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(timeout=120, headers={"Authorization": f"Bearer {token}"})
    try:
        while True:
            try:
                client.get(url + "/openapi.json")
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        sample = sample_events(events, seed=11)
        start = time.perf_counter()
        for i in range(0, len(sample), 500):
            client.post(url + "/v1/events", json=sample[i:i + 500]).raise_for_status()
        ingest_s = time.perf_counter() - start
        read_start = time.perf_counter()
        client.get(url + "/v1/ledgers/warnings",
                   params={"limit": 1}).raise_for_status()  # projects all of it first
        first_read_s = time.perf_counter() - read_start

        arrivals: dict[str, float] = {}  # by household key: webhooks carry no household id
        log = SqliteLog(home / LOG_FILE)
        key_of = Pseudonymizer(deployment_secret() or log.secret(PSEUDONYM_SECRET))
        log.close()
        receiver = _receiver(arrivals)
        client.post(url + "/v1/subscriptions", json={
            "org_unit": "230100000000", "min_level": "red",
            "url": f"http://127.0.0.1:{receiver.server_address[1]}/", "secret": "b" * 32,
        }).raise_for_status()
        latencies = []
        for n in range(triggers):
            household = f"hh-bench-{n}"
            now = datetime.now(UTC).isoformat(timespec="seconds")
            sent = time.perf_counter()
            client.post(url + "/v1/events", json=[{
                "event_id": str(uuid.uuid4()), "type": "petition.received",
                "schema_version": 1, "occurred_at": now, "org_unit": "230102001001",
                "household_id": household,
                "data": {"channel": "walk_in", "category": "sexual_assault", "urgent": True},
            }]).raise_for_status()
            deadline = time.perf_counter() + 10
            while key_of(household) not in arrivals and time.perf_counter() < deadline:
                time.sleep(0.002)
            latencies.append(arrivals.get(key_of(household), float("inf")) - sent)
        receiver.shutdown()
        latencies.sort()
        return {
            "events": len(sample), "ingest_seconds": round(ingest_s, 3),
            "ingest_events_per_s": round(len(sample) / ingest_s),
            "first_read_after_ingest_ms": round(first_read_s * 1000, 1),
            "ingest_then_read_events_per_s": round(len(sample) / (ingest_s + first_read_s)),
            "webhook_latency_ms": {
                "p50": round(statistics.median(latencies) * 1000, 1),
                "p99": round(latencies[min(len(latencies) - 1,
                                           int(len(latencies) * 0.99))] * 1000, 1),
                "max": round(latencies[-1] * 1000, 1),
            },
        }
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--triggers", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(run(args.events, args.triggers), indent=2))


if __name__ == "__main__":
    main()
