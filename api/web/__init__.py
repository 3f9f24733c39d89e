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

from fastapi.responses import RedirectResponse

from api.static_pages import page_headers, static_page_router

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
HEADERS = page_headers()

router = static_page_router("workspace", STATIC, ASSETS, HEADERS)


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/workspace/", status_code=307)
