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
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, serve_api

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
    with serve_api(tmp_path_factory.mktemp("web-home"), USERS, ("--tick", "0.5")) as server:
        yield server


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

