"""The warehouse contract for the work after an alert (catalog v2): the referral ledger,
the warning ledger's ``risk`` and ``reopened`` and its reopened statuses, the keyed reads
(``referral_row``, ``standing_consent``, ``warning_history``, ``open_warning_of_rule``)
and the timeliness figures — each equal to ``projections.reference`` on a stream that
uses every v2 type (``after_alert_data``), now and as of past instants, re-sent or not.

Mixed into ``WarehouseContract``, so it runs on every backend; ``secret`` is the
pseudonym secret the backend's fixture was built with.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from events.instants import parse_instant
from events.orgunits import district_of
from projections import ledgers, reference, schema, timeliness
from projections.kpis import scope_prefix
from projections.referrals import fold_consent
from projections.warehouse.base import Warehouse
from projections.warehouse.rows import raise_info, warning_tables
from projections.warehouse.sqlbase import SqlWarehouse
from tests.projections.after_alert_data import make_after_alert_dataset
from tests.projections.datagen import PERSONAL_MARK, Dataset, make_dataset

V2_SEEDS = (1, 2)


def _load(warehouse: Warehouse, data: Dataset, batch: int = 97) -> None:
    for i in range(0, len(data.events), batch):
        warehouse.write_events(data.events[i : i + batch])
    for i in range(0, len(data.lifecycle), batch):
        warehouse.write_lifecycle(data.lifecycle[i : i + batch])


def _rows(warehouse: Warehouse, sql: str) -> int:
    return int(warehouse.query(sql).rows[0][0])


def _raised_unit(data: Dataset) -> str:
    return str(next(r["org_unit"] for r in data.lifecycle if r["type"] == "warning.raised"))


class AfterAlertContract:
    secret: bytes

    def _expected(self, data: Dataset, name: str, as_of: int | None = None,
                  district: str | None = None, erased: frozenset[str] = frozenset()
                  ) -> list[dict[str, Any]]:
        ref = {"warnings": reference.warning_ledger, "referrals": reference.referral_ledger}
        return ref[name](data.events, data.lifecycle, as_of, district, erased=erased,
                         pseudonym_secret=self.secret)

    def _sql(self, name: str) -> Any:
        return {"warnings": ledgers.warning_ledger, "referrals": ledgers.referral_ledger}[name]

    def test_v2_stream_uses_every_after_alert_type(self) -> None:
        data = make_after_alert_dataset(1)
        kinds = Counter(r["type"] for r in data.lifecycle)
        for kind in ("warning.assessed", "warning.reopened", "referral.sent",
                     "referral.accepted", "referral.declined", "referral.closed"):
            assert kinds[kind] > 2, kind
        events = Counter(e["type"] for e in data.events)
        assert events["consent.recorded"] and events["consent.withdrawn"]
        reopened = [r["warning_id"] for r in data.lifecycle if r["type"] == "warning.reopened"]
        assert Counter(reopened).most_common(1)[0][1] > 1  # reopened twice

    def test_after_alert_ledgers_equal_reference(self, wh: Warehouse) -> None:
        for seed in V2_SEEDS:
            wh.reset()
            data = make_after_alert_dataset(seed)
            _load(wh, data)
            instants = [None, *data.as_of_candidates(random.Random(seed), 12)]
            districts = sorted({district_of(_raised_unit(data))} | {
                r["district"] for r in self._expected(data, "referrals")})
            for name in ("warnings", "referrals"):
                full = self._expected(data, name)
                assert self._sql(name)(wh) == full, (seed, name)
                for as_of in instants:
                    got = self._sql(name)(wh, as_of)
                    assert got == self._expected(data, name, as_of), (seed, name, as_of)
                for where in districts:
                    got = self._sql(name)(wh, None, where, limit=5, offset=2)
                    assert got == self._expected(data, name, None, where)[2:7], (name, where)
            rows = self._expected(data, "warnings")
            assert any(r["reopened"] > 1 for r in rows) and any(r["risk"] for r in rows)
            assert any(r["reopened"] and r["status"] == "open" for r in rows)
            assert any(r["reopened"] and r["status"] == "resolved" for r in rows)
            referrals = self._expected(data, "referrals")
            assert {r["status"] for r in referrals} == {"sent", "accepted", "declined", "closed"}
            assert any(r["overdue"] for r in referrals)

    def test_after_alert_rows_resent_in_other_batches_count_once(self, wh: Warehouse) -> None:
        data = make_after_alert_dataset(3)
        _load(wh, data, batch=41)
        replay = Dataset(list(reversed(data.events)), list(reversed(data.lifecycle)))
        _load(wh, replay, batch=29)
        _load(wh, Dataset(data.events[:20], data.lifecycle[:20]), batch=7)
        warning_records = [r for r in data.lifecycle if not r["type"].startswith("referral.")]
        assert _rows(wh, f"SELECT count() FROM {schema.WARNING_TRANSITIONS} FINAL") == len(
            warning_records)
        assert _rows(wh, f"SELECT count() FROM {schema.REFERRAL_RECORDS} FINAL") == (
            len(data.lifecycle) - len(warning_records))
        for name in ("warnings", "referrals"):
            assert self._sql(name)(wh) == self._expected(data, name), name

    def test_keyed_reads_after_an_alert(self, wh: Warehouse) -> None:
        data = make_after_alert_dataset(4)
        _load(wh, data)
        erased = next(r["household_id"] for r in data.lifecycle if r["type"] == "referral.sent")
        wh.erase_household(erased)
        gone = frozenset({erased})
        warnings = self._expected(data, "warnings", erased=gone)
        for row in warnings:
            assert ledgers.warning_row(wh, row["warning_id"]) == row, row["warning_id"]
        for row in self._expected(data, "referrals", erased=gone):
            assert ledgers.referral_row(wh, row["referral_id"]) == row
        assert ledgers.referral_row(wh, "no-such-referral") is None
        # standing consent: the consent events of the household in log order
        households = {e["household_id"] for e in data.events} - gone
        for household in sorted(households):
            steps = [(e["type"], e["data"]["agencies"])
                     for e in sorted(data.events, key=lambda e: e["offset"])
                     if e["household_id"] == household and e["type"].startswith("consent.")]
            assert ledgers.standing_consent(wh, household) == fold_consent(steps), household
        assert any(ledgers.standing_consent(wh, h) for h in households)
        # a warning's history: its records and its referrals' records, in log order
        for row in warnings[:25]:
            wid = row["warning_id"]
            referrals = {r["referral_id"] for r in data.lifecycle
                         if r["type"] == "referral.sent" and r.get("warning_id") == wid}
            mine = [r for r in data.lifecycle if r.get("warning_id") == wid
                    and not r["type"].startswith("referral.")
                    or r.get("referral_id") in referrals]
            got = ledgers.warning_history(wh, wid)
            assert [(h["type"], parse_instant(h["at"])) for h in got] == [
                (r["type"], parse_instant(r["at"])) for r in sorted(mine, key=lambda r: r["seq"])]
            for h, r in zip(got, sorted(mine, key=lambda r: r["seq"]), strict=True):
                for field in ("risk", "agency", "outcome", "to_level", "referral_id"):
                    if field in h:
                        assert h[field] == r.get(field), (wid, field)
        assert ledgers.warning_history(wh, "no-such-warning") == []
        # the reopen check: an open warning of that rule for that household
        for household in sorted(households)[:15]:
            for rule in sorted({r["rule_id"] for r in warnings}):
                open_ = any(r["status"] != "resolved" for r in warnings
                            if r["household_id"] == household and r["rule_id"] == rule)
                assert ledgers.open_warning_of_rule(wh, household, rule) is open_, (
                    household, rule)

    def test_timeliness_equals_reference(self, wh: Warehouse) -> None:
        data = make_after_alert_dataset(5)
        _load(wh, data)
        unit = _raised_unit(data)
        scopes = [None, unit[:4] + "0" * 8, district_of(unit), unit[:9] + "000", unit]
        instants = [None, *data.as_of_candidates(random.Random(5), 6)]
        for as_of in instants:
            for scope in scopes:
                got = timeliness.timeliness(wh, as_of, None, scope_org_unit=scope)
                want = reference.timeliness(
                    data.events, data.lifecycle, as_of,
                    scope_prefix=scope_prefix(scope) if scope else "")
                assert got == want, (as_of, scope)
        district = district_of(unit)
        got = timeliness.timeliness(wh, None, district)
        assert set(got["districts"]) == {district}
        assert got == reference.timeliness(data.events, data.lifecycle, None, district)
        figures = got["districts"][district]
        assert set(figures) == set(timeliness.FIGURES)
        assert figures["acknowledged_within_sla"]["due"] > 0
        assert timeliness.timeliness(wh, None, "230199") == {"as_of": None, "districts": {}}

    def test_no_personal_text_after_an_alert(self, wh: Warehouse) -> None:
        data = make_after_alert_dataset(6)
        marked = {e["type"] for e in data.events if PERSONAL_MARK in str(e["data"])}
        assert {"warning.assessed", "warning.reopened", "referral.sent",
                "referral.declined"} <= marked
        _load(wh, data)
        for table in ("events", schema.REFERRAL_RECORDS, schema.WARNING_TRANSITIONS):
            dump = wh.query(f"SELECT * FROM {table}").rows
            assert PERSONAL_MARK not in str(dump), table
        stored = wh.query(
            "SELECT type, risk, agency, basis, referral_id, agencies FROM events FINAL "
            "WHERE type IN ('warning.assessed', 'referral.sent', 'consent.recorded')").rows
        assert {r[0] for r in stored} == {"warning.assessed", "referral.sent",
                                          "consent.recorded"}
        assert all(r[1] in ("low", "medium", "high") for r in stored if r[0] == "warning.assessed")
        assert all(r[2] and r[3] and r[4] for r in stored if r[0] == "referral.sent")
        assert all(r[5] for r in stored if r[0] == "consent.recorded")

    def test_a_warehouse_from_before_gets_the_after_alert_tables(self, wh: Warehouse) -> None:
        """A warehouse created before referrals and transitions existed: ``ensure_schema``
        adds the event columns and the two tables, and backfills ``warning_transitions``
        from ``lifecycle`` (v1 records: no repeats), so the v1 rows keep their ledger
        and new v2 rows add to it."""
        assert isinstance(wh, SqlWarehouse)
        for aggregate in schema.AGGREGATE_DEFINITIONS:
            for view, source, _ in aggregate.feeds:
                if source == schema.EVENTS:
                    wh._execute(f"DROP VIEW {view}")
        v2 = ("risk", "referral_id", "agency", "basis", "agencies")
        old = [c for c in schema.EVENT_COLUMNS if c.name not in v2]
        wh._execute("DROP TABLE events")
        columns = ", ".join(f"{schema.quote_ident(c.name)} {c.sql_type}" for c in old)
        wh._execute(f"CREATE TABLE events ({columns}) "
                    "ENGINE = ReplacingMergeTree(`offset`) ORDER BY event_id")
        for table in schema.AFTER_ALERT_TABLES:
            wh._execute(f"DROP TABLE {table}")
        before = make_dataset(35)
        for i in range(0, len(before.lifecycle), 50):  # v1 rows, written as v1 did
            wh._insert(schema.LIFECYCLE, _v1_lifecycle(wh, before.lifecycle[i : i + 50]))
        wh.ensure_schema()
        assert _rows(wh, f"SELECT count() FROM {schema.WARNING_TRANSITIONS}") == len(
            before.lifecycle)
        _load(wh, Dataset(before.events, []))
        assert ledgers.warning_ledger(wh) == reference.warning_ledger(
            before.events, before.lifecycle)
        after = make_after_alert_dataset(7)  # later in the log: offsets and seqs follow
        for e in after.events:
            e["offset"] += len(before.events)
        for r in after.lifecycle:
            r["seq"] += len(before.lifecycle)
        _load(wh, after)
        both = Dataset(before.events + after.events, before.lifecycle + after.lifecycle)
        assert ledgers.warning_ledger(wh) == reference.warning_ledger(both.events, both.lifecycle)
        assert ledgers.referral_ledger(wh) == reference.referral_ledger(
            both.events, both.lifecycle, erased=(), pseudonym_secret=self.secret)
        wh.ensure_schema()  # idempotent: nothing backfilled twice
        assert ledgers.warning_ledger(wh) == reference.warning_ledger(both.events, both.lifecycle)


def _v1_lifecycle(wh: SqlWarehouse, records: list[dict[str, Any]]) -> Any:
    """``lifecycle`` rows as a warehouse before ``warning_transitions`` wrote them."""
    raises = {r["warning_id"]: raise_info(r) for r in records if r["type"] == "warning.raised"}
    raises.update(wh._known_raises({r["warning_id"] for r in records} - set(raises)))
    lifecycle, _ = warning_tables(records, wh.household_key, raises)
    return lifecycle
