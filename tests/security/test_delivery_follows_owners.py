"""The delivery loop follows each subscription's owner as she is now: a silence holds
back only the subscriptions of owners within its author's scope (a street chair's
silence never mutes the district chair's alerts), and a disabled owner's subscriptions
stop delivering at the next record."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.api.conftest import (  # noqa: F401 - the receiver fixture
    DELIVERY_ARGS,
    Api,
    Receiver,
    event,
    receiver,
    serve_api,
    wait_until,
)

USERS = {
    "cadre102": ("cadre", "230102001001"),
    "chair102": ("chair", "230102000000"),  # 道里区's chair
    "chair-street": ("chair", "230102001000"),  # a street chair of 道里区
}
SECRET = "an-owner-test-secret-of-some-length"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with serve_api(tmp_path_factory.mktemp("owners-home"), USERS, DELIVERY_ARGS,
                   {"JIAHE_REPEAT_RED_MINUTES": "0"}) as server:
        yield server


def _rows(api: Api, sub_id: str) -> list[tuple[str, str]]:
    return [(w, s) for w, s in api.sql(
        "alerts.sqlite3", "SELECT warning_id, status FROM deliveries "
        "WHERE subscription_id = ? AND transition = 'warning.raised' ORDER BY id", sub_id)]


def test_silences_reach_only_owners_within_the_author_and_disabled_owners_stop(
    api: Api, receiver: Receiver  # noqa: F811
) -> None:
    subs = {}
    for user, org_unit in (("chair102", "230102000000"), ("chair-street", "230102001000")):
        created = api.call("POST", "/v1/subscriptions", user, json={
            "org_unit": org_unit, "url": f"{receiver.url}/owners-{user}", "secret": SECRET})
        assert created.status_code == 201, created.text
        subs[user] = created.json()["id"]
    silence = api.call("POST", "/v1/silences", "chair-street", json={
        "matcher": {"org_unit": "230102001000"}, "duration_minutes": 60})
    assert silence.status_code == 201, silence.text

    api.publish("cadre102", [event("230102001001", "hh-owners-1")])  # a red warning
    wait_until(lambda: len(receiver.at("/owners-chair102")) >= 1)
    wait_until(lambda: bool(_rows(api, subs["chair-street"])))
    [(first, district_status)] = _rows(api, subs["chair102"])
    assert district_status == "delivered"  # the street chair's silence does not reach her
    assert _rows(api, subs["chair-street"]) == [(first, "silenced")]  # her own is muted

    disabled = CliRunner().invoke(main, ["--home", str(api.home), "users", "disable",
                                         "chair102"])
    assert disabled.exit_code == 0, disabled.output
    api.publish("cadre102", [event("230102001001", "hh-owners-2")])
    wait_until(lambda: len(_rows(api, subs["chair-street"])) >= 2)
    assert [w for w, _ in _rows(api, subs["chair102"])] == [first]  # nothing after disabling
    assert len(receiver.at("/owners-chair102")) == 1


def test_personal_data_in_webhook_bodies_is_asked_for_at_subscription(
    api: Api, receiver: Receiver  # noqa: F811
) -> None:
    paths = {}
    for personal in (False, True):
        created = api.call("POST", "/v1/subscriptions", "chair-street", json={
            "org_unit": "230102001000", "url": f"{receiver.url}/pd-{personal}",
            "secret": SECRET, "personal_data": personal})
        assert created.status_code == 201, created.text
        assert created.json().get("personal_data", False) is personal
        paths[personal] = f"/pd-{personal}"
    for silence in api.call("GET", "/v1/silences", "chair-street").json()["silences"]:
        api.call("DELETE", f"/v1/silences/{silence['id']}", "chair-street")
    api.publish("cadre102", [event("230102001001", "hh-owners-pd")])
    key = api.household_key("hh-owners-pd")
    for path in paths.values():
        wait_until(lambda path=path: any(
            key in (r.json()["warning"].get("household_key"),
                    api.household_key(r.json()["warning"].get("household_id") or ""))
            for r in receiver.at(path)))
    plain = [r for r in receiver.at(paths[False])
             if r.json()["warning"].get("household_key") == key]
    assert plain and all(b"hh-owners-pd" not in r.body for r in plain)
    named = [r for r in receiver.at(paths[True])
             if r.json()["warning"].get("household_id") == "hh-owners-pd"]
    assert named
