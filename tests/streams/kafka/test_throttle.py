"""``--max-rate``: the worker's throttle (streams.kafka.throttle)."""

import pytest

from streams.kafka.throttle import Throttle


def test_a_batch_waits_for_its_share_of_a_second() -> None:
    throttle = Throttle(1000)
    assert throttle.delay_after(500, started=10.0, now=10.0) == pytest.approx(0.5)


def test_time_spent_handling_counts_toward_the_share() -> None:
    throttle = Throttle(1000)
    throttle.delay_after(500, started=10.0, now=10.0)  # its share ends at 10.5
    # The next batch starts at 10.5 and takes until 10.8; its share ends at 11.0.
    assert throttle.delay_after(500, started=10.5, now=10.8) == pytest.approx(0.2)


def test_a_slow_worker_never_waits() -> None:
    throttle = Throttle(1000)
    # 100 events took 2 s, four times longer than their share: no wait at all.
    assert throttle.delay_after(100, started=10.0, now=12.0) == 0.0
    assert throttle.delay_after(100, started=12.0, now=14.0) == 0.0


def test_idle_time_is_not_saved_up_for_a_burst() -> None:
    throttle = Throttle(100)
    throttle.delay_after(100, started=0.0, now=0.0)
    # A minute idle, then a backlog: still one second per 100 events.
    assert throttle.delay_after(100, started=60.0, now=60.0) == pytest.approx(1.0)
    assert throttle.delay_after(100, started=61.0, now=61.0) == pytest.approx(1.0)


def test_the_rate_over_many_batches_is_the_cap() -> None:
    throttle, now = Throttle(2000), 0.0
    for _ in range(100):
        started, now = now, now + 0.01  # 50 events in 10 ms: unthrottled 5,000 events/s
        now += throttle.delay_after(50, started, now)
    assert 100 * 50 / now == pytest.approx(2000, rel=0.01)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Throttle(0)


def test_a_throttled_worker_fetches_at_most_one_seconds_worth() -> None:
    from pathlib import Path

    from streams.kafka.settings import WorkerSettings

    def settings(**options: float) -> WorkerSettings:
        return WorkerSettings(bootstrap="127.0.0.1:9092", partitions=6,
                              data_dir=Path("unused"), **options)  # type: ignore[arg-type]

    assert settings().fetch_limit == 10_000
    assert settings(max_rate=2000).fetch_limit == 2000
    assert settings(max_rate=2000, batch=50).fetch_limit == 50
    assert settings(max_rate=1.5).fetch_limit == 1
