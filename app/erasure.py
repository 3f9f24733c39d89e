"""What ``jiahe erase`` reaches beyond the key: the home's side channels of a household.

Shredding the household's key makes every sealed field unreadable, wherever it went.
What was never sealed under that key needs its own step, each one overwriting the
bytes (``secure_delete``, WAL truncated) rather than only hiding rows:

* the outboxes of the home (``outbox.sqlite3`` of ``jiahe publish --bootstrap``, the
  API's ``api-outbox.sqlite3`` on Kafka): personal fields and fields outside the
  catalog of its queued events read ``[erased]``, its dead letters are ``[erased]``;
* webhook bodies in the subscription store (``alerts.sqlite3``): pending, delivered
  and dead-lettered rows name it by its pseudonymous key instead of its id;
* the warehouse (embedded runtime): the directory's parts are rewritten without it
  (``SqlWarehouse.purge_erased``), so no file keeps its id.

The embedded log's own dead letters are redacted by ``SqliteLog.erase_household``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alerts.delivery import pseudonymous
from alerts.subscriptions import ALERTS_FILE, SubscriptionStore
from app.kafka_mode import OUTBOX_FILE
from privacy.pseudonym import Pseudonymizer
from projections.warehouse.base import Warehouse
from projections.warehouse.sqlbase import SqlWarehouse
from sdk.outbox import Outbox

#: Outbox files a home may hold: the API's on Kafka, and ``jiahe publish``'s default.
OUTBOX_FILES = (OUTBOX_FILE, "outbox.sqlite3")


def erase_side_channels(home: Path, household_id: str, pseudonym_secret: Callable[[], bytes],
                        warehouse: Warehouse | None = None) -> dict[str, Any]:
    """Erase the household from the home's outboxes, webhook bodies and warehouse parts;
    returns what was changed. Idempotent. Files that do not exist are not created
    (``pseudonym_secret`` is only asked for when there are webhook bodies to rewrite)."""
    done: dict[str, Any] = {"outbox_events_erased": 0, "outbox_dead_letters_erased": 0,
                            "webhook_bodies_rewritten": 0, "warehouse_parts_rewritten": False}
    for name in OUTBOX_FILES:
        if (home / name).exists():
            with Outbox(home / name) as outbox:
                events, letters = outbox.erase_household(household_id)
            done["outbox_events_erased"] += events
            done["outbox_dead_letters_erased"] += letters
    if (home / ALERTS_FILE).exists():
        key_of = Pseudonymizer(pseudonym_secret())
        store = SubscriptionStore.at_home(home)
        try:
            done["webhook_bodies_rewritten"] = store.erase_household(
                household_id, lambda body: pseudonymous(body, key_of))
        finally:
            store.close()
    if isinstance(warehouse, SqlWarehouse):
        warehouse.purge_erased([household_id])
        done["warehouse_parts_rewritten"] = True
    return done
