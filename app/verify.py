"""``jiahe verify`` on an embedded home: both hash chains, the warehouse, the anchor.

The chain walking and comparisons are :mod:`privacy.audit`'s; this use case only
opens the home's log, user store and warehouse and hands them over."""

from __future__ import annotations

from pathlib import Path

from access.users import USERS_FILE, UserStore
from app.bootstrap import bootstrap_embedded
from privacy.audit import (
    AUDIT,
    LIFECYCLE,
    WAREHOUSE_SQL,
    ChainReport,
    VerifyReport,
    WarehouseReport,
    check_anchor,
    compare_warehouse,
    read_chain,
)
from streams.embedded.processor import LIFECYCLE_CONSUMER
from streams.embedded.runtime import LOG_FILE


def verify_home(
    home: Path,
    warehouse: bool = True,
    anchor: Path | None = None,
    update_anchor: bool = False,
) -> VerifyReport:
    """Walk both chains under ``home``, compare the warehouse, check the anchor."""
    if not (home / LOG_FILE).exists():
        raise FileNotFoundError(f"no embedded log at {home / LOG_FILE}")
    runtime = bootstrap_embedded(home)
    try:
        lifecycle, note = read_chain(runtime.log.db, LIFECYCLE)
        if note:
            lifecycle.notes.append(note)
        audit = _verify_audit(home / USERS_FILE)
        report = VerifyReport(lifecycle, audit)
        if warehouse:
            upto = runtime.log.checkpoint(LIFECYCLE_CONSUMER)
            try:
                rows = runtime.warehouse.query(WAREHOUSE_SQL).rows
            except Exception as exc:  # chdb refuses a path another process holds
                report.warehouse = WarehouseReport(problems=[
                    f"warehouse: could not be read ({exc}); stop the process that holds it, "
                    "or use --no-warehouse"])
            else:
                report.warehouse = compare_warehouse(lifecycle.records, upto, rows)
    finally:
        runtime.close()
    if anchor is not None:
        check_anchor(report, anchor, update_anchor)
    return report


def _verify_audit(path: Path) -> ChainReport:
    if not path.exists():
        report = ChainReport("audit")
        report.notes.append("no user store (users.sqlite3): no audit trail yet")
        return report
    store = UserStore(path)  # creates missing tables (audit_meta) like any other open
    try:
        report, note = read_chain(store.db, AUDIT)
    finally:
        store.close()
    if note:
        report.notes.append(note)
    return report
