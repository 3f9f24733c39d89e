"""Run the API with uvicorn: ``python -m api.server --home H --port P`` (tests use this).

A separate module so that ``jiahe api`` and the test harness start the very
same thing; the process that runs it owns the home's chdb warehouse.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from api.app import create_app
from api.delivery import DEFAULT_MAX_ATTEMPTS
from api.kafka_mode import KafkaSettings


def serve(home: Path, host: str = "127.0.0.1", port: int = 8000,
          max_attempts: int = DEFAULT_MAX_ATTEMPTS,
          backoff_s: float = 1.0, poll_s: float = 0.5, tick_s: float = 30.0,
          kafka: KafkaSettings | None = None, pack: Path | None = None) -> None:
    """Serve until interrupted; with ``kafka`` on the Kafka runtime (api.kafka_mode).

    ``pack``: the rule pack of the embedded processor (default: the built-in pack).
    """
    app = create_app(home, max_attempts=max_attempts, backoff_s=backoff_s, poll_s=poll_s,
                     tick_s=tick_s or None, kafka=kafka, pack=pack)
    uvicorn.run(app, host=host, port=port, log_level="warning")


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
    serve(args.home, args.host, args.port, args.webhook_max_attempts, args.webhook_backoff,
          args.webhook_poll, args.tick, kafka=kafka, pack=args.pack)


if __name__ == "__main__":
    main()
