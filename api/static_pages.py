"""One way to serve a static page and its assets: a fixed list, strict headers.

The workspace (``/workspace/``) and the field app (``/field/``) are both plain HTML,
JS and CSS with no build step and no data of their own. Only the names listed are
served, so no path taken from a URL ever reaches the filesystem.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

#: The policy both pages start from: nothing inline, nothing from another origin.
BASE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'")
CSP_TAIL = "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"


def page_headers(extra_csp: str = "") -> dict[str, str]:
    """Security headers of a page; ``extra_csp`` adds directives (e.g. ``worker-src``)."""
    csp = "; ".join(part for part in (BASE_CSP, extra_csp, CSP_TAIL) if part)
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # revalidated on every load: a new version reaches a browser at its next load
        "Cache-Control": "no-cache",
    }


def static_page_router(prefix: str, directory: Path, assets: Mapping[str, str],
                       headers: Mapping[str, str]) -> APIRouter:
    """``/{prefix}`` → ``/{prefix}/``; ``index.html`` there; each listed asset by name."""
    router = APIRouter(include_in_schema=False)

    @router.get(f"/{prefix}")
    def no_slash() -> RedirectResponse:
        return RedirectResponse(f"/{prefix}/", status_code=307)

    @router.get(f"/{prefix}/")
    def index() -> FileResponse:
        return FileResponse(directory / "index.html", media_type="text/html; charset=utf-8",
                            headers=dict(headers))

    @router.get(f"/{prefix}/{{name}}")
    def asset(name: str) -> FileResponse:
        if name not in assets:
            raise HTTPException(404, "not found")
        return FileResponse(directory / name, media_type=assets[name], headers=dict(headers))

    return router
