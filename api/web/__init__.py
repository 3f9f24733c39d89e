"""The chairs' workspace (主席工作台): one static page served by the API.

Plain HTML + vanilla JS + CSS under ``static/`` (no build step). The page
holds no data of its own: the user pastes a bearer token (kept in the tab's
sessionStorage) and the page calls the ``/v1/*`` endpoints with it, so every
scope and role rule of ``api.auth`` applies unchanged. The live inbox reads
``/v1/alerts/stream`` with ``fetch()`` streaming (it can send the
``Authorization`` header, which ``EventSource`` cannot), so no token ever goes
into a URL.

The page and its assets need no token (they contain no data); a strict
Content-Security-Policy forbids inline scripts and other origins.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/workspace/", status_code=307)


@router.get("/workspace")
def workspace_no_slash() -> RedirectResponse:
    return RedirectResponse("/workspace/", status_code=307)


@router.get("/workspace/")
def workspace() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                        headers=HEADERS)


@router.get("/workspace/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:  # a fixed list: no path from the URL ever reaches the filesystem
        raise HTTPException(404, "not found")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)
