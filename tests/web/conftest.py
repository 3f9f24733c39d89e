"""A real API server (uvicorn subprocess, its own home and users) and headless Chromium.

Chromium is Debian's ``/usr/bin/chromium`` driven by Playwright's Python API;
Playwright's own browser downloads are never used. Each browser gets a fresh
user-data dir. Without Playwright or Chromium the tests are skipped (CI
installs both and sets ``JIAHE_REQUIRE_BROWSER=1``, which turns the skip into a
failure).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.users import UserStore
from tests.api.conftest import Api, free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("JIAHE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

USERS = {
    "cadre102": ("cadre", "230102000000"),
    "cadre103": ("cadre", "230103000000"),
    "chair102": ("chair", "230102000000"),
    "chair103": ("chair", "230103000000"),
    "admin": ("city_admin", "230100000000"),
    "analyst": ("analyst", "230100000000"),
}


@pytest.fixture(scope="module")
def web_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("web-home")
    store = UserStore.at_home(home)
    tokens = {name: store.add(name, role, org) for name, (role, org) in USERS.items()}
    store.close()
    port = free_port()
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.server", "--home", str(home), "--host", "127.0.0.1",
         "--port", str(port), "--tick", "0.5"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/openapi.json", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError((home / "server.log").read_text())
        time.sleep(0.2)
    try:
        yield Api(url, home, tokens)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    server_log = (home / "server.log").read_text()
    assert "Traceback" not in server_log, server_log


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    missing = None
    try:
        from playwright import sync_api
    except ImportError:
        missing = "playwright is not installed (pip install playwright; no `playwright install`)"
    if missing is None and not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if missing is not None:
        if os.environ.get("JIAHE_REQUIRE_BROWSER") == "1":  # CI: a missing browser is a failure
            pytest.fail(missing)
        pytest.skip(missing)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as driver:
        yield driver


@pytest.fixture
def open_browser(playwright_driver: Any) -> Iterator[Any]:
    """``open_browser()`` → a new page in a new headless Chromium with a fresh profile."""
    contexts: list[Any] = []
    dirs: list[str] = []

    def launch() -> Any:
        profile = tempfile.mkdtemp(prefix="jiahe-chromium-")
        dirs.append(profile)
        context = playwright_driver.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 900}, locale="zh-CN",
            timezone_id="Asia/Shanghai")
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.pages[0] if context.pages else context.new_page()
        errors: list[str] = []  # uncaught exceptions and console errors (CSP violations too)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.js_errors = errors
        return page

    yield launch
    for context in contexts:
        context.close()
    for profile in dirs:
        shutil.rmtree(profile, ignore_errors=True)

