"""Run the API with uvicorn: ``python -m api.server --home H --port P`` (tests use this).

A separate module so that ``jiahe api`` and the test harness start the very
same thing; the process that runs it owns the home's chdb warehouse.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from alerts.delivery import DEFAULT_MAX_ATTEMPTS
from api.app import create_app
from app.bootstrap_api import bootstrap_api
from app.services import Services
from streams.kafka.settings import KafkaSettings


def serve(services: Services, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``services`` (``app.bootstrap_api.bootstrap_api``) until interrupted."""
    uvicorn.run(create_app(services), host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api.server")
    parser.add_argument("--home", type=Path, default=Path(".jiahe"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--webhook-max-attempts", type=int, default=DEFAULT_MAX_ATTEMPTS)
    parser.add_argument("--webhook-backoff", type=float, default=1.0)
    parser.add_argument("--webhook-poll", type=float, default=0.5)
    parser.add_argument("--tick", type=float, default=30.0,
                        help="Seconds between wall-clock processor runs (0: only on ingest).")
    parser.add_argument("--bootstrap", help="Kafka HOST:PORT: serve on the Kafka runtime.")
    parser.add_argument("--topic-prefix", default="", help="As for `jiahe worker`.")
    parser.add_argument("--pack", type=Path,
                        help="Rule pack YAML for the embedded processor (default: built-in).")
    args = parser.parse_args(argv)
    kafka = KafkaSettings(args.bootstrap, args.topic_prefix) if args.bootstrap else None
    services = bootstrap_api(args.home, kafka=kafka, pack=args.pack,
                             max_attempts=args.webhook_max_attempts,
                             backoff_s=args.webhook_backoff, poll_s=args.webhook_poll,
                             tick_s=args.tick or None)
    serve(services, args.host, args.port)


if __name__ == "__main__":
    main()
