"""Tokens expire, and can be revoked or disabled from the command line; the next request
is refused with the reason, and an open alert stream of that user closes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from access.users import (
    DEFAULT_EXPIRES_DAYS,
    USERS_FILE,
    TokenRefused,
    User,
    UserStore,
    hash_token,
)
from api.stream import RECHECK_S
from cli.main import main
from events.instants import MICROS_PER_DAY, now_micros
from tests.api.conftest import DELIVERY_ARGS, Api, serve_api

USERS = {
    "chair102": ("chair", "230102000000"),
    "expired": ("chair", "230102000000"),
    "leaked": ("chair", "230102000000"),
    "gone": ("chair", "230102000000"),
    "moved": ("chair", "230102000000"),
    "streamer": ("chair", "230102000000"),
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with serve_api(tmp_path_factory.mktemp("tokens-home"), USERS, DELIVERY_ARGS) as server:
        yield server


def _jiahe(api: Api, *args: str) -> str:
    done = CliRunner().invoke(main, ["--home", str(api.home), "users", *args])
    assert done.exit_code == 0, done.output
    return done.output


def test_a_token_expires(tmp_path: Path) -> None:
    store = UserStore.at_home(tmp_path)
    token = store.add("c", "chair", "230102000000", expires_days=1)
    now = now_micros()
    assert store.authenticate(token, now) == User("c", "chair", "230102000000")
    with pytest.raises(TokenRefused, match="expired"):
        store.authenticate(token, now + MICROS_PER_DAY + 1)
    default = store.add("d", "chair", "230102000000")
    assert store.lookup(default) is not None
    with pytest.raises(TokenRefused, match="expired"):
        store.authenticate(default, now + (DEFAULT_EXPIRES_DAYS + 1) * MICROS_PER_DAY)
    store.close()


def test_an_expired_token_is_401_with_the_reason(api: Api) -> None:
    assert api.call("GET", "/v1/alerts", "expired").status_code == 200
    db = sqlite3.connect(api.home / USERS_FILE)
    with db:
        db.execute("UPDATE users SET expires_us = ? WHERE name = 'expired'", (now_micros() - 1,))
    db.close()
    for path in ("/v1/alerts", "/v1/silences", "/v1/ledgers/warnings"):
        refused = api.call("GET", path, "expired")
        assert refused.status_code == 401
        assert "expired" in refused.json()["detail"]


def test_revoke_holds_from_the_next_request(api: Api) -> None:
    assert api.call("GET", "/v1/alerts", "leaked").status_code == 200
    assert _jiahe(api, "revoke", "leaked").strip() == "leaked: revoked"
    refused = api.call("GET", "/v1/alerts", "leaked")
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    # a revoked token stays revoked; enabling does not bring it back
    assert CliRunner().invoke(main, ["--home", str(api.home), "users", "enable", "leaked"]
                              ).exit_code != 0
    assert api.call("GET", "/v1/alerts", "leaked").status_code == 401
    # a new token works, the old one never again
    new = _jiahe(api, "add", "leaked", "--role", "chair", "--org-unit", "230102000000").strip()
    headers = {"Authorization": f"Bearer {new}"}
    assert api.client.get(api.url + "/v1/alerts", headers=headers).status_code == 200
    assert api.call("GET", "/v1/alerts", "leaked").status_code == 401


def test_disable_and_enable(api: Api) -> None:
    _jiahe(api, "disable", "gone")
    refused = api.call("GET", "/v1/alerts", "gone")
    assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
    _jiahe(api, "enable", "gone")
    assert api.call("GET", "/v1/alerts", "gone").status_code == 200
    unknown = CliRunner().invoke(main, ["--home", str(api.home), "users", "revoke", "nobody"])
    assert unknown.exit_code != 0 and "no user named" in unknown.output


def test_users_list_never_shows_a_token(api: Api) -> None:
    listed = _jiahe(api, "list")
    assert "chair102" in listed and "230102000000" in listed and "expires_at" in listed
    assert all(token not in listed for token in api.tokens.values())
    json_lines = _jiahe(api, "list", "--json")
    assert '"status":"active"' in json_lines and "token" not in json_lines


def test_a_store_from_before_expiry_keeps_its_users(tmp_path: Path) -> None:
    """Existing users get the default lifetime counted from the upgrade: nobody is
    locked out by it, and nobody keeps a token for ever."""
    db = sqlite3.connect(tmp_path / USERS_FILE)
    db.executescript("""
        CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL,
                            org_unit TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
                            created_at TEXT NOT NULL, agency TEXT);
    """)
    db.execute("INSERT INTO users VALUES ('old', 'chair', '230102000000', ?, "
               "'2020-01-01T00:00:00Z', NULL)", (hash_token("old-token"),))
    db.commit()
    db.close()
    store = UserStore.at_home(tmp_path)
    now = now_micros()
    assert store.authenticate("old-token", now) == User("old", "chair", "230102000000")
    [account] = store.accounts()
    assert account.state(now) == "active"
    assert abs(account.expires_us - (now + DEFAULT_EXPIRES_DAYS * MICROS_PER_DAY)) < 60_000_000
    with pytest.raises(TokenRefused, match="expired"):
        store.authenticate("old-token", now + (DEFAULT_EXPIRES_DAYS + 1) * MICROS_PER_DAY)
    store.close()


def _stream_lines(api: Api, user: str, lines: list[str], opened: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {api.tokens[user]}"}
    with httpx.Client(timeout=httpx.Timeout(30.0)) as client, client.stream(
            "GET", api.url + "/v1/alerts/stream", headers=headers) as response:
        assert response.status_code == 200
        opened.set()
        for line in response.iter_lines():
            lines.append(line)


@pytest.mark.parametrize("change", [
    ("revoke", "streamer"), ("disable", "streamer"),
    ("add", "moved", "--role", "chair", "--org-unit", "230102001000"),  # re-scoped
    ("add", "streamer", "--role", "chair", "--org-unit", "230102000000"),  # re-keyed
])
def test_an_open_stream_closes_when_access_changes(api: Api, change: tuple[str, ...]) -> None:
    user = change[1]
    lines: list[str] = []
    opened = threading.Event()
    reader = threading.Thread(target=_stream_lines, args=(api, user, lines, opened),
                              daemon=True)
    reader.start()
    assert opened.wait(20)
    _jiahe(api, *change)
    reader.join(RECHECK_S + 10)
    assert not reader.is_alive(), "the stream outlived the user's access"
    assert "event: closed" in lines
    if change[0] == "disable":
        _jiahe(api, "enable", user)
    if change[0] in ("revoke", "add"):  # the next parameter needs the user again
        api.tokens[user] = _jiahe(api, "add", user, "--role", "chair", "--org-unit",
                                  "230102000000").strip()


def test_the_scope_subscriptions_deliver_within(tmp_path: Path) -> None:
    """What the delivery loop asks of an owner: her scope while active; an expired token
    keeps her alerts coming, a revoked or disabled account stops them."""
    store = UserStore.at_home(tmp_path)
    for name in ("old", "gone", "shut"):
        store.add(name, "chair", "230102000000", expires_days=1)
    db = store.db
    db.execute("UPDATE users SET expires_us = 0 WHERE name = 'old'")
    store.revoke("gone")
    store.set_disabled("shut")
    assert store.delivery_scope("old") == "230102000000"
    assert store.delivery_scope("gone") is None and store.delivery_scope("shut") is None
    assert store.delivery_scope("nobody") is None
    store.add("old", "chair", "230102001000")  # re-scoped: the new scope
    assert store.delivery_scope("old") == "230102001000"
    store.close()
