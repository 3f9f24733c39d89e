"""Outbox bodies that are not warnings: referral records for partner agencies, and the
break-glass notice for the chairs of the household's place.

Every delivery body is one JSON object with ``subscription_id`` and ``transition``
and one subject: ``warning`` (a warning alert, ``alerts.delivery``), ``referral``
(a referral lifecycle record, to the agency it is addressed to) or ``notice``
(a break-glass grant). The channels render each subject (``alerts.channels.email``).

**Break-glass notice.** When a chair opens a household outside her scope
(``access.break_glass``), every *chair* subscribed to alerts for the place the
household belongs to (a subscription whose org unit covers the owner, whatever
its level or rule filter) is told: grantee, her role and scope, household id,
owner, reason, grant and expiry instants. The reason goes with it because those
chairs are entitled to the household and the reason is what lets them judge the
access; the e-mail channel still carries no household id and no free text (its
rule for every mail), only the grant id, the grantee and the expiry, and points to
``GET /v1/break-glass``. A notice is never silenced (a silence quiets alert noise;
an access to a household is not noise) and is keyed (subscription, grant id,
``break_glass.granted``) in the outbox like any alert.
"""

from __future__ import annotations

from typing import Any

import orjson

from access.users import UserStore
from alerts.subscriptions import SubscriptionStore
from events.orgunits import district_of, is_within

NOTICE = "break_glass.granted"


def _dump(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def is_warning_body(body: bytes) -> bool:
    """A warning alert's body (grouped, silenced, repeated); referrals and notices are not."""
    return orjson.loads(body).get("warning") is not None


def referral_body(subscription_id: str, record: dict[str, Any], owner: str) -> bytes:
    """What a partner agency receives for one referral record: the record (ids, agency,
    basis, outcome, instant: no free text) and where the household belongs."""
    return _dump({
        "subscription_id": subscription_id, "transition": str(record["type"]),
        "referral": {"referral_id": record["referral_id"], "agency": record["agency"],
                     "household_id": record["household_id"], "org_unit": owner,
                     "district": district_of(owner)},
        "record": record,
    })


def notice_body(subscription_id: str, grant: dict[str, Any]) -> bytes:
    return _dump({"subscription_id": subscription_id, "transition": NOTICE, "notice": grant})


def notify_break_glass(store: SubscriptionStore, users: UserStore, grant: dict[str, Any]) -> int:
    """Enqueue the notice of ``grant`` (``Grant.public``) for every chair's subscription
    covering the household's owner; returns how many were enqueued."""
    owner = str(grant["owner_org_unit"])
    added = 0
    for sub in store.all():
        if sub.agency is not None or not is_within(owner, sub.org_unit):
            continue
        subscriber = users.get(sub.owner)
        if subscriber is None or subscriber.role != "chair":
            continue
        added += store.enqueue(sub.id, str(grant["grant_id"]), NOTICE,
                               notice_body(sub.id, grant))
    return added
