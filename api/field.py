"""The cadres' field app (入户工作) at ``/field/``, and the shape of its work list.

Like the chairs' workspace (``api.web``) it is static HTML + vanilla JS + CSS under
``field/`` (no build step) that holds no data of its own: the cadre signs in with
her bearer token and the page calls ``/v1/*`` with it, so every role and scope rule
of ``api.auth`` applies unchanged. Unlike the workspace it must work without a
network: a service worker (``sw.js``) keeps the app shell, and the events a cadre
records wait in an IndexedDB outbox, each stamped on the device with its UUID and
``occurred_at``, until ingest answers for them (a resend is a duplicate, never a
second event). The token lives in the device's storage for the same reason.

The page and its assets need no token (they contain no data). The policy is the
workspace's, plus what an installable app needs: ``manifest-src`` for the web app
manifest and ``worker-src`` for the service worker, both same-origin only.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from api.static_pages import page_headers, static_page_router

STATIC = Path(__file__).resolve().parent / "field"
_JS = "text/javascript; charset=utf-8"
ASSETS = {
    "app.js": _JS,
    "i18n.js": _JS,
    "outbox.js": _JS,
    "sw.js": _JS,
    "app.css": "text/css; charset=utf-8",
    "manifest.webmanifest": "application/manifest+json",
    "icon.svg": "image/svg+xml",
    "icon-192.png": "image/png",
    "icon-512.png": "image/png",
}
#: The workspace's policy plus the manifest and the service worker, both same-origin.
HEADERS = page_headers("manifest-src 'self'; worker-src 'self'")

router = static_page_router("field", STATIC, ASSETS, HEADERS)


# -- GET /v1/worklist -----------------------------------------------------------------
# Codes, ids, vocabulary and instants only: the schema itself shows there is no free text.


class WorklistUser(BaseModel):
    name: str
    role: str
    org_unit: str = Field(description="The caller's scope.")


class VisitDue(BaseModel):
    household_id: str
    org_unit: str = Field(description="The owner (community).")
    district: str
    flags: list[str] = Field(description="From the latest household.registered.")
    key_household: bool
    next_visit_due: str = Field(description="L + C of screening-overdue (DESIGN).")
    visit_overdue: bool = Field(description="next_visit_due is before now.")
    last_visit_at: str | None
    open_warnings: int
    highest_open_level: str | None


class AssignedWarning(BaseModel):
    warning_id: str
    rule_id: str
    level: str
    household_id: str
    org_unit: str
    district: str
    status: str = Field(description="open or acknowledged (resolved ones leave the list).")
    raised_at: str
    acknowledged_at: str | None
    handling_level: str
    handling_org_unit: str


class GapFollowup(BaseModel):
    household_id: str
    child_ref: str
    org_unit: str
    district: str
    gap_recorded_at: str
    followup_due: str = Field(description="gap_recorded_at + 7 days.")
    overdue: bool


class VisitSection(BaseModel):
    total: int = Field(description="Rows before the cut at limit.")
    rows: list[VisitDue]


class WarningSection(BaseModel):
    total: int
    rows: list[AssignedWarning]


class GapSection(BaseModel):
    total: int
    rows: list[GapFollowup]


class Worklist(BaseModel):
    user: WorklistUser
    as_of: str = Field(description="The server's wall clock when the list was made.")
    horizon_days: int
    limit: int
    visits: VisitSection = Field(
        description="Registered households overdue or due within horizon_days; key "
                    "households first, then by due date.")
    warnings: WarningSection = Field(
        description="Unresolved warnings assigned to the caller; red first.")
    guardianship: GapSection = Field(
        description="Gaps neither followed up nor restored; earliest due first.")
