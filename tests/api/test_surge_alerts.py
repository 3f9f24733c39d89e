"""District surge warnings (``kind: surge`` rules) in the inbox of the API.

A surge belongs to a district, not to a household: the district's chair sees it with
``household_id`` null, other districts' chairs do not, and the commands that name a
household (acknowledge, resolve, assign) answer 409 instead of writing an event.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.bootstrap import bootstrap_embedded
from streams.clock import EventTimeClock
from tests.api.conftest import USERS, Api, serve_api
from tests.rules.test_surge import CLOSE, DAY, RULE, SURGE_PACK_PATH, history, in_window


@pytest.fixture(scope="module")
def surge_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home: Path = tmp_path_factory.mktemp("surge-home")
    runtime = bootstrap_embedded(home, pack=SURGE_PACK_PATH)
    runtime.publish(history(4) + in_window(12), "test")  # a 道里区 surge at CLOSE
    runtime.process(EventTimeClock(CLOSE + DAY))
    runtime.close()
    with serve_api(home, USERS, ("--tick", "0", "--pack", str(SURGE_PACK_PATH))) as api:
        yield api


def _surges(api: Api, user: str) -> list[dict[str, object]]:
    response = api.call("GET", "/v1/alerts", user)
    assert response.status_code == 200, response.text
    return [a for a in response.json()["alerts"] if a["rule_id"] == RULE]


def test_the_district_chair_sees_the_open_surge_without_a_household(surge_api: Api) -> None:
    (surge,) = _surges(surge_api, "chair102")
    assert surge["household_id"] is None
    assert surge["org_unit"] == "230102000000" and surge["handling_level"] == "district"
    assert surge["status"] == "open"
    assert _surges(surge_api, "chair103") == []
    assert [s["warning_id"] for s in _surges(surge_api, "admin")] == [surge["warning_id"]]


@pytest.mark.parametrize(("action", "body"), [
    ("acknowledge", None), ("resolve", {"note": "n"}), ("assign", {"assignee": "chair102"}),
])
def test_commands_naming_a_household_are_refused_for_a_surge(
    surge_api: Api, action: str, body: dict[str, str] | None,
) -> None:
    (surge,) = _surges(surge_api, "chair102")
    response = surge_api.call("POST", f"/v1/alerts/{surge['warning_id']}/{action}",
                              "chair102", json=body)
    assert response.status_code == 409, response.text
    assert "surge" in response.json()["detail"]
    assert _surges(surge_api, "chair102")[0]["status"] == "open"
