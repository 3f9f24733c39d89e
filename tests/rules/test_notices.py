"""Notices (DESIGN: an event that breaks a condition is processed, changes nothing, and is
reported): counted in total and by kind, as ``jiahe replay`` prints them.

A notice's kind is its text without the warning it names, so that thousands of commands
for closed warnings are one line of the summary, not thousands.
"""

from __future__ import annotations

from rules.ownership import NOT_OWNER_REGISTERED, NOT_OWNER_TRANSFERRED, TO_OWNER
from rules.replay import Counts, notice_kind
from tests.helpers import T0, ack, replay, resolve
from tests.rules.households import OTHER_DISTRICT, SAME_STREET, register, transfer


def test_a_notice_kind_leaves_out_the_warning_id():
    assert notice_kind(
        "warning.acknowledged for w-0123456789abcdef: warning is closed; nothing changed"
    ) == "warning.acknowledged: warning is closed; nothing changed"
    assert notice_kind(TO_OWNER) == TO_OWNER


def test_notices_are_counted_by_kind_and_reconcile_with_the_total():
    rp, records = replay([
        register("h1", T0, []),
        register("h1", T0 + 1, [], org=SAME_STREET),
        transfer("h1", T0 + 2, OTHER_DISTRICT, org=SAME_STREET),
        transfer("h1", T0 + 3, "230102001001"),
        ack("h1", "w-0123456789abcdef", T0 + 4),
        resolve("h2", "w-fedcba9876543210", T0 + 5),
        resolve("h2", "w-0000000000000000", T0 + 6),
    ])
    assert records == []
    assert rp.counts.processed == 7 and rp.counts.notices == 6
    assert rp.counts.notice_reasons == {
        NOT_OWNER_REGISTERED: 1,
        NOT_OWNER_TRANSFERRED: 1,
        TO_OWNER: 1,
        "warning.acknowledged: warning is unknown for this household; nothing changed": 1,
        "warning.resolved: warning is unknown for this household; nothing changed": 2,
    }
    assert sum(rp.counts.notice_reasons.values()) == rp.counts.notices


def test_the_summary_lists_notices_by_kind():
    counts = Counts()
    counts.note([TO_OWNER, TO_OWNER])
    counts.note([])
    assert counts.as_dict()["notices"] == 2
    assert counts.as_dict()["notices_by_reason"] == {TO_OWNER: 2}
