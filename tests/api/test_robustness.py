"""Bad input is a 4xx, never a 500; the CLI creates users whose token works once shown."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from access.users import UserStore, hash_token
from cli.api import register
from tests.api.conftest import Api

JUNK = [b"", b"{", b"[]", b"null", b'{"note": 5}', b'{"note": "' + b"x" * 30_000 + b'"}',
        b"\xff", b'{"org_unit": "1", "url": "ftp://x", "secret": "short"}']


@pytest.mark.parametrize("path", [
    "/v1/alerts/w-0000000000000000/acknowledge", "/v1/alerts/w-0000000000000000/resolve",
    "/v1/subscriptions", "/v1/events",
])
def test_junk_bodies_are_4xx(api: Api, path: str) -> None:
    for body in JUNK:
        response = api.call("POST", path, "chair102", content=body,
                            headers={"Content-Type": "application/json"})
        ok = path == "/v1/events" and body == b"[]"
        assert response.status_code == 200 if ok else 400 <= response.status_code < 500, (
            path, body[:20], response.text)
        # without a token the answer is 401 whatever the body
        anonymous = api.call("POST", path, None, content=body,
                             headers={"Content-Type": "application/json"})
        assert anonymous.status_code == 401


@pytest.mark.parametrize("query", [
    "/v1/alerts?status=x", "/v1/alerts?district=2301020", "/v1/ledgers/nope",
    "/v1/ledgers/warnings?as_of=2026-13-01", "/v1/kpis?as_of=%00", "/v1/ledgers/households?"
    "as_of=2026-11-01T00:00:00", "/v1/subscriptions/%2e%2e",
])
def test_junk_queries_are_4xx(api: Api, query: str) -> None:
    for user in ("chair102", "admin"):
        response = api.call("DELETE" if "subscriptions" in query else "GET", query, user)
        assert 400 <= response.status_code < 500, (query, response.text)


def test_bad_subscription_scope_is_refused(api: Api) -> None:
    for org, code in (("230103000000", 403), ("230100000000", 403), ("2301", 422)):
        response = api.call("POST", "/v1/subscriptions", "chair102", json={
            "org_unit": org, "url": "http://127.0.0.1:9/", "secret": "s" * 16})
        assert response.status_code == code, (org, response.text)


def test_cli_users_add(tmp_path: object) -> None:
    @click.group()
    @click.option("--home")
    @click.pass_context
    def main(ctx: click.Context, home: str) -> None:
        from pathlib import Path

        ctx.obj = {"home": Path(home)}

    register(main)
    home = str(tmp_path)
    result = CliRunner().invoke(main, ["--home", home, "users", "add", "li", "--role", "chair",
                                       "--org-unit", "230102000000"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    from pathlib import Path

    store = UserStore.at_home(Path(home))
    user = store.lookup(token)
    assert user is not None and (user.role, user.org_unit) == ("chair", "230102000000")
    stored = store.db.execute("SELECT token_hash FROM users").fetchall()
    assert stored == [(hash_token(token),)] and token not in str(stored)
    store.close()
    bad = CliRunner().invoke(main, ["--home", home, "users", "add", "x", "--role", "chair",
                                    "--org-unit", "12"])
    assert bad.exit_code != 0
    assert "api" in main.commands
