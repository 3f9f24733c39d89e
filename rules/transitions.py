"""Which transition a lifecycle record is: half of every dedupe key downstream.

Deliveries are deduplicated on (warning_id, transition) and consumers of
``jiahe.warnings`` on the ``record_id`` header, so both must tell a re-sent
record (same transition: drop it) from a new one (deliver it):

* raised, acknowledged and resolved happen once per warning: the type is enough;
* a warning reaches each handling level once: escalations add the level;
* a warning may be assigned again, to someone else or back to an earlier
  assignee: each assignment is its own transition, named by assignee and
  instant. (Keyed on the type alone, a reassignment was taken for a re-send of
  the first assignment and never delivered.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def transition_of(record: Mapping[str, Any]) -> str:
    """``warning.raised``, ``warning.escalated:street``, ``warning.assigned:li@…Z`` …"""
    kind = str(record["type"])
    if kind == "warning.escalated":
        return f"{kind}:{record['to_level']}"
    if kind == "warning.assigned":
        return f"{kind}:{record['assignee']}@{record['at']}"
    return kind
