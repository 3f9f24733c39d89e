"""SSRF through webhook URLs: internal addresses are refused at creation and at every
delivery (DNS rebinding), redirects are not followed, and a dead letter's reason is a
short category that tells a prober nothing about what answered.

No test sends anything outside the loopback: names are resolved by stubs, refusals are
asserted to happen before any connection (``tests.security.webhooks.LoopbackOnly``).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from alerts.egress import ALLOW_ENV, DNS_ENV, EgressGuard, WebhookRefused
from alerts.subscriptions import SubscriptionStore
from app.bootstrap_api import bootstrap_api
from cli.main import main
from tests.api.conftest import USERS, Receiver, free_port, serve_api
from tests.security.webhooks import SECRET, home_with, stub_resolver, worker_for


def _no_lookup(host: str, port: int) -> list[str]:
    raise AssertionError(f"a literal address was resolved: {host}")


REFUSED = [
    ("127.0.0.1", "loopback"), ("127.1.2.3", "loopback"), ("[::1]", "loopback"),
    ("169.254.169.254", "link-local"), ("[fe80::1]", "link-local"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("172.31.255.255", "private"),
    ("192.168.1.1", "private"), ("[fc00::1]", "private"), ("[fd12:3456::1]", "private"),
    ("100.64.0.1", "private"), ("224.0.0.1", "multicast"), ("[ff02::1]", "multicast"),
    ("0.0.0.0", "unspecified"), ("[::]", "unspecified"), ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("[::ffff:169.254.169.254]", "link-local"),  # IPv4-mapped
    ("[64:ff9b::a00:1]", "private"),  # NAT64 of 10.0.0.1
    ("[2002:a00:1::]", "private"),  # 6to4 of 10.0.0.1
]


@pytest.mark.parametrize(("host", "reason"), REFUSED)
def test_an_internal_literal_address_is_refused_with_its_reason(host: str, reason: str) -> None:
    guard = EgressGuard(resolve=_no_lookup)
    with pytest.raises(WebhookRefused) as refused:
        guard.check(f"http://{host}:8123/?query=SELECT+1")
    assert str(refused.value) == f"address refused: {reason}"


@pytest.mark.parametrize("answer", [
    ["169.254.169.254"],  # the cloud metadata service
    ["10.0.0.7"],  # a compose network's ClickHouse
    ["8.8.8.8", "10.0.0.7"],  # one internal answer among public ones is enough
    ["2001:4860:4860::8888", "::1"],
])
def test_a_name_that_resolves_to_an_internal_address_is_refused(answer: list[str]) -> None:
    guard = EgressGuard(resolve=stub_resolver(answer))  # STUB resolver: no DNS
    with pytest.raises(WebhookRefused, match="^address refused: "):
        guard.check("http://metadata.google.internal/computeMetadata/v1/")


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def nxdomain(host: str, port: int) -> list[str]:  # STUB resolver
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(WebhookRefused, match="^host does not resolve$"):
        EgressGuard(resolve=nxdomain).check("https://hooks.invalid/x")


def test_a_public_name_is_pinned_to_the_address_that_was_checked() -> None:
    guard = EgressGuard(resolve=stub_resolver(["8.8.8.8", "8.8.4.4"]))  # STUB resolver
    target = guard.check("https://user:pw@Hooks.Example.org:8443/in?x=1")
    assert target.address == "8.8.8.8"
    assert target.pinned_url() == "https://user:pw@8.8.8.8:8443/in?x=1"
    assert target.host_header() == "hooks.example.org:8443"
    v6 = EgressGuard(resolve=stub_resolver(["2001:4860:4860::8888"])).check("http://h.example/")
    assert v6.pinned_url() == "http://[2001:4860:4860::8888]:80/"
    assert v6.host_header() == "h.example"


@pytest.mark.parametrize("url", ["ftp://8.8.8.8/", "file:///etc/passwd", "http:///x",
                                 "gopher://127.0.0.1:6379/_FLUSHALL", "http://[::1/"])
def test_only_http_and_https_urls_with_a_host(url: str) -> None:
    with pytest.raises(WebhookRefused, match="^url: "):
        EgressGuard(resolve=_no_lookup).check(url)


def test_the_allow_list_admits_a_host_by_name_or_literal_and_port() -> None:
    guard = EgressGuard(["127.0.0.1", "hooks.internal:8443", "[::1]:9000"], _no_lookup)
    assert guard.check("http://127.0.0.1:1234/").address is None  # any port
    assert guard.check("https://HOOKS.internal.:8443/").address is None  # name, that port
    assert guard.check("http://[::1]:9000/").address is None
    for url, reason in (("http://127.0.0.2/", "loopback"), ("http://[::1]:9001/", "loopback")):
        with pytest.raises(WebhookRefused, match=f"^address refused: {reason}$"):
            guard.check(url)
    with pytest.raises(WebhookRefused):  # another port of an allowed name: resolved, refused
        EgressGuard(["hooks.internal:8443"], stub_resolver(["10.1.1.1"])).check(
            "https://hooks.internal/")
    with pytest.raises(WebhookRefused, match="allow-list entry"):
        EgressGuard(["hooks.internal:http"])


def test_the_allow_list_is_also_read_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "clickhouse:8123, 10.0.0.9")
    guard = EgressGuard.from_env(["127.0.0.1"], _no_lookup)
    for url in ("http://clickhouse:8123/", "http://10.0.0.9:80/", "http://127.0.0.1:5/"):
        assert guard.check(url).address is None
    with pytest.raises(WebhookRefused):
        guard.check("http://10.0.0.10/")


def test_the_store_refuses_an_internal_webhook_at_creation(tmp_path: Path) -> None:
    store = SubscriptionStore.at_home(tmp_path, EgressGuard(resolve=stub_resolver(["10.0.0.7"])))
    try:
        with pytest.raises(WebhookRefused, match="^address refused: private$"):
            store.create("chair", "230102000000", "red", None, "http://clickhouse:8123/",
                         SECRET)
        with pytest.raises(WebhookRefused, match="^address refused: link-local$"):
            store.create("chair", "230102000000", "red", None,
                         "http://169.254.169.254/latest/meta-data/", SECRET)
        assert store.all() == []
    finally:
        store.close()


def test_dns_rebinding_is_refused_at_delivery_before_any_connection(
        tmp_path: Path) -> None:
    """The name resolved to a public address when the subscription was made; at delivery it
    resolves to the loopback (where a receiver listens) or to a private address."""
    home_with(tmp_path)
    loopback = Receiver()  # not allowed: it must never hear from the worker
    port = int(loopback.url.rsplit(":", 1)[1])
    # STUB resolver: 8.8.8.8 at creation, then 127.0.0.1 / 10.0.0.1 at the attempts
    guard = EgressGuard(resolve=stub_resolver(["8.8.8.8"], ["127.0.0.1"], ["10.0.0.1"]))
    store, worker, transport = worker_for(tmp_path, guard, max_attempts=2)
    try:
        sub = store.create("chair", "230102000000", "red", None,
                           f"http://rebind.example:{port}/hook", SECRET)
        assert worker.enqueue_new() == 1
        assert worker.dispatch_due() == 0
        [dead] = store.dead_letters(sub.id)
        assert dead["attempts"] == 2 and dead["last_error"] == "address refused: private"
        rows = store.db.execute("SELECT status FROM deliveries").fetchall()
        assert rows == [("dead",)]
    finally:
        worker.stop()
        store.close()
        loopback.close()
    assert transport.requests == [] and loopback.received == []


def test_a_delivery_goes_to_the_checked_address_with_the_host_named(tmp_path: Path) -> None:
    """Pinning: the request is made to the IP the guard checked, with the URL's host in
    the Host header, so no second resolution can move it."""
    home_with(tmp_path)
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:  # STUB resolver, counting lookups
        lookups.append(host)
        return ["8.8.8.8"]

    store, worker, transport = worker_for(tmp_path, EgressGuard(resolve=resolve))
    try:
        store.create("chair", "230102000000", "red", None, "http://hooks.example:8080/in",
                     SECRET)
        worker.enqueue_new()
        worker.dispatch_due()  # LoopbackOnly refuses to connect to 8.8.8.8: a failure
    finally:
        worker.stop()
        store.close()
    [request] = transport.requests
    assert str(request.url) == "http://8.8.8.8:8080/in"
    assert request.headers["Host"] == "hooks.example:8080"
    assert lookups == ["hooks.example", "hooks.example"]  # at creation, at the attempt


class _Redirector(ThreadingHTTPServer):
    def __init__(self, location: str) -> None:
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                server.hits += 1
                self.send_response(307)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_a_redirect_is_a_failed_delivery_and_is_not_followed(tmp_path: Path) -> None:
    home_with(tmp_path)
    inner = Receiver()  # where the redirect points: an internal service
    redirector = _Redirector(inner.url + "/admin")
    store, worker, _ = worker_for(tmp_path, EgressGuard([f"127.0.0.1:{redirector.server_port}"],
                                                        _no_lookup))
    try:
        sub = store.create("chair", "230102000000", "red", None,
                           f"http://127.0.0.1:{redirector.server_port}/hook", SECRET)
        worker.enqueue_new()
        assert worker.dispatch_due() == 0
        assert store.dead_letters(sub.id)[0]["last_error"] == "redirect refused"
    finally:
        worker.stop()
        store.close()
        redirector.shutdown()
        redirector.server_close()
        inner.close()
    assert redirector.hits == 1 and inner.received == []


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, never listening: refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def test_dead_letters_say_a_short_reason_never_the_raw_error(
        tmp_path: Path, refusing_port: int) -> None:
    home_with(tmp_path)
    failing = Receiver()
    failing.plan["/500"] = [500]
    silent = socket.socket()  # accepts (the backlog) and never answers: a timeout
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    store, worker, _ = worker_for(tmp_path, EgressGuard(["127.0.0.1"], _no_lookup),
                                  timeout_s=0.5)
    try:
        subs = {reason: store.create(reason, "230102000000", "red", None, url, SECRET).id
                for reason, url in (
                    ("connection refused", f"http://127.0.0.1:{refusing_port}/"),
                    ("HTTP 500", failing.url + "/500"),
                    ("timeout", f"http://127.0.0.1:{silent.getsockname()[1]}/"))}
        assert worker.enqueue_new() == 3
        worker.dispatch_due()
        for reason, sub_id in subs.items():
            assert [d["last_error"] for d in store.dead_letters(sub_id)] == [reason]
    finally:
        worker.stop()
        store.close()
        failing.close()
        silent.close()


@pytest.fixture(scope="module")
def strict_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The API with no allow-list: webhooks may reach public addresses only. Name lookups
    are on for it: the one name below is ``localhost``, answered by /etc/hosts."""
    with serve_api(tmp_path_factory.mktemp("ssrf-home"), USERS, (),
                   {ALLOW_ENV: "", DNS_ENV: "system"}) as api:
        yield api


@pytest.mark.parametrize(("url", "reason"), [
    ("http://169.254.169.254/latest/meta-data/iam/", "address refused: link-local"),
    ("http://127.0.0.1:8123/?query=DROP+TABLE+x", "address refused: loopback"),
    ("http://localhost:9000/", "address refused: loopback"),  # /etc/hosts, no DNS
    ("http://[::ffff:10.0.0.7]:8123/", "address refused: private"),
    ("http://100.100.100.200/", "address refused: private"),
])
def test_the_api_refuses_an_internal_webhook_with_422_and_stores_nothing(
        strict_api: Any, url: str, reason: str) -> None:
    response = strict_api.call("POST", "/v1/subscriptions", "chair102", json={
        "org_unit": "230102000000", "url": url, "secret": SECRET})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == reason
    listed = strict_api.call("GET", "/v1/subscriptions", "chair102").json()
    assert all(s["url"] != url for s in listed["subscriptions"])


def test_the_api_accepts_an_allowed_host(tmp_path: Path) -> None:
    port = free_port()
    with serve_api(tmp_path, USERS, (), {ALLOW_ENV: f"127.0.0.1:{port}"}) as api:
        ok = api.call("POST", "/v1/subscriptions", "chair102", json={
            "org_unit": "230102000000", "url": f"http://127.0.0.1:{port}/", "secret": SECRET})
        other = api.call("POST", "/v1/subscriptions", "chair102", json={
            "org_unit": "230102000000", "url": f"http://127.0.0.1:{port + 1}/",
            "secret": SECRET})
    assert ok.status_code == 201, ok.text
    assert other.status_code == 422 and other.json()["detail"] == "address refused: loopback"


def test_the_api_wires_one_allow_list_into_creation_and_delivery(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1:7001")
    services = bootstrap_api(tmp_path, allow_webhook_hosts=["127.0.0.1:7000"], tick_s=None)
    try:
        assert services.worker.egress is services.subscriptions.egress
        for port in (7000, 7001):
            services.subscriptions.create("chair", "230102000000", "red", None,
                                          f"http://127.0.0.1:{port}/", SECRET)
        with pytest.raises(WebhookRefused, match="^address refused: loopback$"):
            services.subscriptions.create("chair", "230102000000", "red", None,
                                          "http://127.0.0.1:7002/", SECRET)
    finally:
        services.close()


def test_a_malformed_allow_list_entry_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "api",
                                       "--allow-webhook-host", "hooks:http"])
    assert result.exit_code == 2
    assert "--allow-webhook-host" in result.output and "expected HOST[:PORT]" in result.output


def test_with_name_lookups_off_a_host_name_is_refused_without_any_query(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$JIAHE_WEBHOOK_DNS=off`` (set for the whole test suite): the system resolver is
    never asked, so no DNS query leaves the machine; literals and allowed hosts still work."""
    asked: list[str] = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: asked.append(host) or [])
    monkeypatch.setenv("JIAHE_WEBHOOK_DNS", "off")
    guard = EgressGuard(["127.0.0.1"])
    with pytest.raises(WebhookRefused, match="host does not resolve"):
        guard.check("https://hooks.example.org/jiahe")
    assert asked == []
    assert guard.check("http://127.0.0.1:9/hook").host == "127.0.0.1"
    with pytest.raises(WebhookRefused, match="address refused: private"):
        guard.check("http://10.0.0.7/hook")
    assert asked == []
