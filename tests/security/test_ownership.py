"""Subscriptions and silences belong to their author: nobody else may read, delete or
redeliver a subscription or see where it delivers, a silence reaches no further than
its author's scope, and no silence lasts more than 30 days."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from alerts.routing import Silence, SilenceStore, silenced_by
from alerts.subscriptions import SubscriptionStore
from api.silences import MAX_SILENCE_DAYS
from tests.api.conftest import DELIVERY_ARGS, Api, serve_api

USERS = {
    "chair102": ("chair", "230102000000"),  # 道里区's chair
    "chair-street": ("chair", "230102001000"),  # a street chair of 道里区
    "chair103": ("chair", "230103000000"),
    "admin": ("city_admin", "230100000000"),
    "police102": ("partner", "230102000000", "police"),
}
#: the tests' server lets webhooks reach the loopback (tests.api.conftest)
URL = "http://127.0.0.1:9/hook?token=s3cret"
WARNING = {"warning_id": "w-1", "rule_id": "dv-petition", "level": "red",
           "org_unit": "230102001001"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with serve_api(tmp_path_factory.mktemp("ownership-home"), USERS, DELIVERY_ARGS) as server:
        yield server


@pytest.fixture(scope="module")
def district_sub(api: Api) -> str:
    """The district chair's webhook for a street that the street chair also covers."""
    created = api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": "230102001000", "url": URL, "secret": "k" * 16})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@pytest.mark.parametrize("intruder", ["chair-street", "chair103", "police102"])
def test_only_the_author_or_a_city_admin_reaches_a_subscription(
        api: Api, district_sub: str, intruder: str) -> None:
    listed = api.call("GET", "/v1/subscriptions", intruder).json()["subscriptions"]
    assert district_sub not in {s["id"] for s in listed}
    for method, path in (("GET", f"/v1/subscriptions/{district_sub}/dead-letters"),
                         ("POST", f"/v1/subscriptions/{district_sub}/redeliver"),
                         ("DELETE", f"/v1/subscriptions/{district_sub}")):
        refused = api.call(method, path, intruder)
        assert refused.status_code == 404, (method, path, refused.text)
        assert URL not in refused.text
    mine = {s["id"]: s for s in api.call("GET", "/v1/subscriptions", "chair102"
                                         ).json()["subscriptions"]}
    assert mine[district_sub]["url"] == URL  # still there, and its author sees where to


def test_a_city_admin_sees_a_subscription_but_never_its_url(api: Api, district_sub: str
                                                            ) -> None:
    response = api.call("GET", "/v1/subscriptions", "admin")
    shown = {s["id"]: s for s in response.json()["subscriptions"]}
    assert shown[district_sub]["url"] is None and shown[district_sub]["target_hidden"]
    assert "/hook" not in response.text and "s3cret" not in response.text
    assert api.call("GET", f"/v1/subscriptions/{district_sub}/dead-letters", "admin"
                    ).status_code == 200


def _silence(api: Api, user: str, org_unit: str, **expiry: object) -> int:
    body = {"matcher": {"org_unit": org_unit}, **(expiry or {"duration_minutes": 60})}
    return api.call("POST", "/v1/silences", user, json=body).status_code


def test_a_street_chair_cannot_mute_the_district(api: Api) -> None:
    # not by naming the district or the city …
    assert _silence(api, "chair-street", "230102000000") == 403
    assert _silence(api, "chair-street", "230100000000") == 403
    # … and her own street's silence does not reach the district chair's subscriptions
    created = api.call("POST", "/v1/silences", "chair-street", json={
        "matcher": {"org_unit": "230102001000"}, "duration_minutes": 60})
    assert created.status_code == 201
    store = SubscriptionStore.at_home(api.home)
    silences = SilenceStore.of(store)
    silence = silences.get(created.json()["id"])
    store.close()
    assert silence is not None and silence.author_scope == "230102001000"
    assert silenced_by([silence], WARNING, "warning.raised", owner_scope="230102000000") is None
    assert silenced_by([silence], WARNING, "warning.raised", owner_scope="230100000000") is None
    # it does mute subscriptions of owners within her street
    assert silenced_by([silence], WARNING, "warning.raised", owner_scope="230102001000"
                       ) == silence
    # the district chair's own silence of that street reaches the district's subscriptions
    mine = Silence("s", "chair102", "230102001000", None, None, None, 0, 1 << 62,
                   author_scope="230102000000")
    assert silenced_by([mine], WARNING, "warning.raised", owner_scope="230102000000") == mine


def test_a_street_chair_cannot_lift_the_district_chairs_silence(api: Api) -> None:
    created = api.call("POST", "/v1/silences", "chair102", json={
        "matcher": {"org_unit": "230102001000"}, "duration_minutes": 60})
    assert created.status_code == 201
    silence_id = created.json()["id"]
    assert api.call("DELETE", f"/v1/silences/{silence_id}", "chair-street").status_code == 403
    assert api.call("DELETE", f"/v1/silences/{silence_id}", "chair103").status_code == 404
    active = {s["id"] for s in api.call("GET", "/v1/silences", "chair102").json()["silences"]}
    assert silence_id in active
    assert api.call("DELETE", f"/v1/silences/{silence_id}", "chair102").status_code == 204


def test_a_silence_lasts_at_most_30_days(api: Api) -> None:
    days = 60 * 24
    assert _silence(api, "chair102", "230102001000",
                    duration_minutes=MAX_SILENCE_DAYS * days + 1) == 422
    assert _silence(api, "chair102", "230102001000", duration_minutes=366 * days) == 422
    later = datetime.now(UTC) + timedelta(days=MAX_SILENCE_DAYS, hours=1)
    assert _silence(api, "chair102", "230102001000", expires_at=later.isoformat()) == 422
    assert _silence(api, "chair102", "230102001000",
                    duration_minutes=MAX_SILENCE_DAYS * days - 1) == 201
