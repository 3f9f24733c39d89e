"""The assign action, ledger paging, and the kafka channel's refusal on the embedded runtime."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, event


def _inbox_row(api: Api, user: str, warning_id: str) -> dict[str, Any] | None:
    response = api.call("GET", "/v1/alerts", user)
    assert response.status_code == 200, response.text
    return next((r for r in response.json()["alerts"] if r["warning_id"] == warning_id), None)


def test_assign_appends_an_event_and_the_inbox_shows_the_assignee(api: Api) -> None:
    api.publish("chair102", [event("230102001001", "hh-assign-1")])
    warning_id = api.warning_for("hh-assign-1")
    row = _inbox_row(api, "chair102", warning_id)
    assert row is not None and row["assignee"] is None

    done = api.call("POST", f"/v1/alerts/{warning_id}/assign", "admin",
                    json={"assignee": "chair102"})
    assert done.status_code == 200, done.text
    assert done.json()["warning"]["status"] == "open"  # assignment does not stop escalation
    row = _inbox_row(api, "chair102", warning_id)
    assert row is not None and row["assignee"] == "chair102"

    # a cadre in scope may hand it on, and learns the outcome but not the row
    by_cadre = api.call("POST", f"/v1/alerts/{warning_id}/assign", "cadre102",
                        json={"assignee": "admin"})
    assert by_cadre.status_code == 200, by_cadre.text
    assert "warning" not in by_cadre.json()
    row = _inbox_row(api, "admin", warning_id)
    assert row is not None and row["assignee"] == "admin"  # the latest assignment wins

    assigned = [(t, b) for t, b in api.sql(
        "log.sqlite3", "SELECT type, body FROM lifecycle WHERE warning_id = ? ORDER BY seq",
        warning_id) if t == "warning.assigned"]
    assert len(assigned) == 2
    event_ids = [r for (r,) in api.sql(
        "log.sqlite3", "SELECT event_id FROM events WHERE household_id = ? ORDER BY position",
        "hh-assign-1")]
    assert done.json()["event_id"] in event_ids and by_cadre.json()["event_id"] in event_ids


def test_assign_refuses_bad_assignees_and_callers(api: Api) -> None:
    api.publish("chair102", [event("230102006002", "hh-assign-2")])
    warning_id = api.warning_for("hh-assign-2")
    path = f"/v1/alerts/{warning_id}/assign"
    # chair103's scope (230103) does not cover a warning in 230102
    assert api.call("POST", path, "admin", json={"assignee": "chair103"}).status_code == 422
    assert api.call("POST", path, "admin", json={"assignee": "nobody"}).status_code == 422
    assert api.call("POST", path, "admin", json={"assignee": "analyst"}).status_code == 422
    assert api.call("POST", path, "admin", json={}).status_code == 422
    assert api.call("POST", path, "analyst", json={"assignee": "admin"}).status_code == 403
    # outside the caller's scope: as if it did not exist
    assert api.call("POST", path, "chair103", json={"assignee": "admin"}).status_code == 404
    assert api.call("POST", "/v1/alerts/w-0000000000000000/assign", "admin",
                    json={"assignee": "admin"}).status_code == 404
    row = _inbox_row(api, "admin", warning_id)
    assert row is not None and row["assignee"] is None  # nothing was appended
    assert not api.sql("log.sqlite3", "SELECT 1 FROM lifecycle WHERE warning_id = ? "
                       "AND type = 'warning.assigned'", warning_id)

    resolved = api.call("POST", f"/v1/alerts/{warning_id}/resolve", "admin")
    assert resolved.status_code == 200, resolved.text
    assert api.call("POST", path, "admin", json={"assignee": "admin"}).status_code == 409


def test_ledger_pages_cover_the_ledger_in_its_order(api: Api) -> None:
    api.publish("admin", [event("230104001001", f"hh-page-{i}", hours_ago=10 + i)
                          for i in range(7)])
    whole = api.call("GET", "/v1/ledgers/warnings", "admin").json()
    assert whole["count"] == whole["total"] >= 7 and whole["next_offset"] is None
    pages: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = api.call("GET", f"/v1/ledgers/warnings?limit=3&offset={offset}", "admin").json()
        assert page["total"] is None and page["count"] <= 3  # cut in the warehouse
        pages.extend(page["rows"])
        offset = page["next_offset"]
    assert pages == whole["rows"]
    beyond = api.call("GET", f"/v1/ledgers/warnings?offset={whole['total']}", "admin").json()
    assert beyond["rows"] == [] and beyond["count"] == 0


def test_ledger_paging_counts_only_rows_in_scope(api: Api) -> None:
    api.publish("admin", [event("230103002001", "hh-page-103a"),
                          event("230103002001", "hh-page-103b")])
    whole = api.call("GET", "/v1/ledgers/warnings", "chair103").json()
    mine = api.call("GET", "/v1/ledgers/warnings?limit=1000", "chair103").json()
    assert mine["rows"] == whole["rows"] and len(mine["rows"]) == whole["total"] >= 2
    assert mine["next_offset"] is None
    assert all(r["district"] == "230103000000" for r in mine["rows"])
    second = api.call("GET", "/v1/ledgers/warnings?limit=1&offset=1", "chair103").json()
    assert second["rows"] == mine["rows"][1:2]
    assert second["next_offset"] == (2 if len(mine["rows"]) > 2 else None)


def test_a_street_reader_pages_only_her_own_rows(api: Api) -> None:
    """Below a district the page is cut after scoping: offsets count her rows only."""
    api.publish("admin", [event("230102001001", "hh-page-street-a"),
                          event("230102002001", "hh-page-elsewhere")])
    whole = api.call("GET", "/v1/ledgers/households", "chair-street").json()
    assert whole["rows"] and all(r["org_unit"].startswith("230102001")
                                 for r in whole["rows"])
    first = api.call("GET", "/v1/ledgers/households?limit=1", "chair-street").json()
    assert first["total"] == whole["total"] and first["rows"] == whole["rows"][:1]


def test_ledger_page_size_is_bounded(api: Api) -> None:
    for query in ("limit=1001", "limit=0", "offset=-1", "limit=x"):
        response = api.call("GET", f"/v1/ledgers/households?{query}", "admin")
        assert response.status_code == 422, (query, response.text)


def test_kafka_channel_needs_the_kafka_runtime(api: Api) -> None:
    response = api.call("POST", "/v1/subscriptions", "chair102",
                        json={"org_unit": "230102000000", "channel": "kafka"})
    assert response.status_code == 422
    assert "Kafka runtime" in response.text
    with_url = api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": "230102000000", "channel": "kafka", "url": "http://127.0.0.1:1/x"})
    assert with_url.status_code == 422
