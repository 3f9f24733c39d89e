"""Which transition a lifecycle record is: half of every dedupe key downstream.

Deliveries are deduplicated on (warning_id, transition) and consumers of
``jiahe.warnings`` on the ``record_id`` header, so both must tell a re-sent
record (same transition: drop it) from a new one (deliver it):

* raised, acknowledged and resolved happen once per warning: the type is enough;
* a warning reaches each handling level once: escalations add the level;
* a warning may be assigned again, to someone else or back to an earlier
  assignee: each assignment is its own transition, named by assignee and
  instant. (Keyed on the type alone, a reassignment was taken for a re-send of
  the first assignment and never delivered.) Assessments likewise, by risk and
  instant;
* a reopened warning is raised no more, but is acknowledged, escalated and
  resolved again: every record of it after its n-th reopening (the reopening
  included) carries ``reopened: n``, and its transition ends in ``#n``;
* a referral is sent, answered and closed once: its records name the referral
  (``referral_id``, no ``warning_id``) and the type is enough.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def transition_of(record: Mapping[str, Any]) -> str:
    """``warning.raised``, ``warning.escalated:street``, ``warning.assigned:li@…Z``,
    ``warning.assessed:high@…Z``, ``warning.acknowledged#1`` (after a reopening) …"""
    kind = str(record["type"])
    if kind == "warning.escalated":
        transition = f"{kind}:{record['to_level']}"
    elif kind == "warning.assigned":
        transition = f"{kind}:{record['assignee']}@{record['at']}"
    elif kind == "warning.assessed":
        transition = f"{kind}:{record['risk']}@{record['at']}"
    else:
        transition = kind
    reopened = record.get("reopened")
    return f"{transition}#{reopened}" if reopened else transition


def subject_of(record: Mapping[str, Any]) -> str:
    """What a record is about, the other half of the dedupe key: its warning, or a
    referral by household and ``referral_id`` (unique per household only)."""
    if str(record["type"]).startswith("referral."):
        return f"referral/{record['household_id']}/{record['referral_id']}"
    return str(record["warning_id"])
