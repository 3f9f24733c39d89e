"""``create_app(services)``: the FastAPI application over services built by the bootstrap.

Endpoints (all need ``Authorization: Bearer``): ingest, the alert inbox with
acknowledge/resolve (appended as ``warning.*`` events, never table updates),
a server-sent-events stream of the inbox, the ledgers, KPIs, and webhook
subscriptions; the work after an alert (assess, reopen, history, consent:
``api.after_alert``) and referrals to partner agencies (``api.referrals``). See
``api.auth`` for the role/scope rules and ``app.services`` for why processing is
inline. A note sent to ``acknowledge`` is accepted but not kept: the catalog's
``warning.acknowledged`` has no note field.

The services come from ``app.bootstrap_api.bootstrap_api``, on either runtime. On the
Kafka runtime (``app.kafka_mode``) actions on warnings answer 202 with the event_id
(the worker applies them; the change shows once its lifecycle record is mirrored).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, model_validator

from access.users import PARTNER, User
from alerts.channels.email import MAILTO
from alerts.channels.kafka import KAFKA_URL
from alerts.egress import WebhookRefused
from alerts.subscriptions import Subscription
from api import stream
from api.after_alert import after_alert_router
from api.auth import (
    INGEST_ROLES,
    KPI_ROLES,
    ROW_ROLES,
    SUBSCRIBE_ROLES,
    AuthenticateFirst,
    district_filter,
    in_scope,
    org_unit_in_scope,
    require,
)
from api.break_glass import break_glass_router
from api.field import Worklist
from api.field import router as field_router
from api.limits import MAX_INGEST_BYTES, MAX_OFFSET, BodyLimit, SlotStream, StreamSlots
from api.referrals import referral_router
from api.silences import silence_router
from api.stream import MAX_POSITION, open_log, start_position
from api.web import router as workspace_router
from app.services import FORBIDDEN, OwnershipRefused, Services
from events.codec import (
    MAX_NESTING,
    NESTED_TOO_DEEP,
    Rejected,
    _contains_float,
    _has_unrepresentable_integer,
    _path_of_big_integer,
    nested_deeper_than,
)
from events.instants import InstantError, parse_instant

MAX_EVENTS = 5_000
#: ingest's body cap (``api.limits.BodyLimit`` enforces every endpoint's as bytes arrive)
MAX_BODY_BYTES = MAX_INGEST_BYTES
#: the largest ledger page (``?limit=``); without ``limit`` the whole ledger is returned.
MAX_PAGE = 1_000
#: the inbox's page when ``?limit=`` is not given: the inbox is never built whole.
INBOX_PAGE = MAX_PAGE
#: roles that may assign a warning (a cadre hands a case on within her scope, too).
ASSIGN_ROLES = ("cadre", "chair", "city_admin")
CITY_ADMIN = "city_admin"
Status = Literal["open", "acknowledged", "resolved"]
WarningLevel = Literal["yellow", "orange", "red"]
LedgerName = Literal["warnings", "households", "guardianship", "coverage", "referrals"]

IngestUser = Annotated[User, Depends(require(*INGEST_ROLES))]
RowUser = Annotated[User, Depends(require(*ROW_ROLES))]
KpiUser = Annotated[User, Depends(require(*KPI_ROLES))]
SubscriberUser = Annotated[User, Depends(require(*SUBSCRIBE_ROLES))]
AssignUser = Annotated[User, Depends(require(*ASSIGN_ROLES))]


class Note(BaseModel):
    note: str | None = Field(default=None, max_length=20_000)


class Assignment(BaseModel):
    assignee: str = Field(min_length=1, max_length=200,
                          description="An existing user whose scope covers the warning.")


class SubscriptionIn(BaseModel):
    org_unit: str = Field(description="Alerts for this unit and everything under it.")
    min_level: WarningLevel = "yellow"
    rule_ids: list[str] | None = None
    channel: Literal["webhook", "email", "kafka"] = Field(
        default="webhook", description="kafka (Kafka runtime only): alerts are produced to "
        "jiahe.alerts.<6-digit district> of each warning, key = warning_id.")
    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2_000,
                            description="webhook: where to POST.")
    secret: str | None = Field(default=None, min_length=16, max_length=200,
                               description="webhook: the HMAC-SHA256 key.")
    address: str | None = Field(default=None, max_length=254,
                                pattern=r"^[^@\s<>,;:\"]+@[^@\s<>,;:\"]+\.[^@\s<>,;:\"]+$",
                                description="email: the recipient.")
    personal_data: bool = Field(
        default=False, description="webhook: name households by household_id. By default "
        "bodies carry only the pseudonymous household_key, as analytics tables do.")

    @model_validator(mode="after")
    def _channel_fields(self) -> SubscriptionIn:
        if self.channel == "webhook" and (self.url is None or self.secret is None):
            raise ValueError("a webhook subscription needs url and secret")
        if self.channel == "email" and (self.address is None or self.url is not None):
            raise ValueError("an email subscription needs address (and no url)")
        if self.channel == "kafka" and (self.url or self.secret or self.address):
            raise ValueError("a kafka subscription takes no url, secret or address")
        if self.channel == "kafka" and self.personal_data:
            raise ValueError("a kafka subscription carries pseudonymous keys only: a topic "
                             "cannot forget an erased household's records")
        return self


def _as_of(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except InstantError as exc:
        raise HTTPException(422, f"as_of: {exc}") from exc


async def _read_body(request: Request) -> bytes:
    """Refuse oversize bodies before holding them in memory (413)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"body larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(413, f"body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_PUBLISHED: dict[int | str, dict[str, Any]] = {202: {
    "description": "Kafka runtime: the event is published (event_id); the worker applies it "
                   "and the inbox shows the change once its lifecycle record is mirrored."}}
_REFUSED = ("An event is about a household outside the caller's scope: ``detail`` and the "
            "usual ingest body (received, accepted, duplicate, rejected, results), each "
            "refused event rejected with its reason")
_INGEST_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    # Items are any JSON value: a non-event is answered "rejected" per item (and kept).
    "schema": {"type": "array", "maxItems": MAX_EVENTS,
               "items": {"description": "an event (DESIGN.md envelope)"}}}}}}


#: Error answers any operation may give, documented so that clients (and schemathesis,
#: tests/api/test_schemathesis.py) know them: ``{"detail": <text, or FastAPI's list>}``.
_ERROR_BODY = {"application/json": {"schema": {
    "type": "object", "required": ["detail"], "properties": {"detail": {}}}}}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": _ERROR_BODY} for code, text in (
        (400, "Malformed request body (kept as a dead letter)"),
        (401, "No valid bearer token"),
        (403, "The caller's role or org unit does not allow this"),
        (404, "Not found, or outside the caller's org unit"),
        (409, "Conflicts with the current state"),
        (413, "Body or batch too large"),
        (422, "Invalid parameters or body"),
    )}


def create_app(services: Services) -> FastAPI:
    """The application over ``services``; its lifespan starts and closes them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.start()
        try:
            yield
        finally:
            services.close()

    app = FastAPI(title="jiahe", version="0.1.0", lifespan=lifespan,
                  summary="家和 — risk early warning: ingest, alerts, ledgers, KPIs",
                  responses=_ERROR_RESPONSES)
    app.state.services = services
    app.add_exception_handler(WebhookRefused, lambda _, e: JSONResponse({"detail": str(e)}, 422))
    streams = StreamSlots()
    app.state.streams = streams

    app.add_middleware(AuthenticateFirst)
    # outermost: every body is counted before a middleware or endpoint reads it
    app.add_middleware(BodyLimit)

    async def _keep_bad_body(body: bytes, reason: str, user: User) -> None:
        """Bad input is kept, never dropped: a body no event can be read from is one dead
        letter (oversize bodies, 413, are not: keeping them would invite abuse)."""
        await run_in_threadpool(services._write, [Rejected(reason, body)], user)

    @app.post("/v1/events", openapi_extra=_INGEST_BODY, tags=["ingest"],
              responses={403: {"description": _REFUSED, "content": _ERROR_BODY}})
    async def ingest(request: Request, user: IngestUser, response: Response
                     ) -> dict[str, Any]:
        """Publish a batch; a result per event (accepted / duplicate / rejected + reason).

        403 when any event is about a household outside the caller's scope (DESIGN
        "Ingest"): the body keeps the same shape, those events are rejected with
        their reason (and kept as dead letters), the others are judged as usual.
        """
        body = await _read_body(request)
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            await _keep_bad_body(body, f"body is not valid JSON ({exc})", user)
            raise HTTPException(400, f"body is not valid JSON ({exc})") from exc
        if not isinstance(items, list):
            await _keep_bad_body(body, "body must be a JSON array of events", user)
            raise HTTPException(400, "body must be a JSON array of events")
        if nested_deeper_than(items, MAX_NESTING + 2):  # the array, the event, 64 below
            reason = f"{NESTED_TOO_DEEP} (the whole batch is refused)"
            await _keep_bad_body(body, reason, user)
            raise HTTPException(422, reason)
        if _contains_float(items) and _has_unrepresentable_integer(body):
            # orjson turned the integer into a float: refuse rather than change it (as decode)
            where = _path_of_big_integer(json.loads(body)) or "body"
            reason = (f"{where}: an integer outside the 64-bit range cannot be kept exactly "
                      "(the whole batch is refused)")
            await _keep_bad_body(body, reason, user)
            raise HTTPException(422, reason)
        if len(items) > MAX_EVENTS:
            raise HTTPException(413, f"more than {MAX_EVENTS} events in one request")
        results = await run_in_threadpool(services.ingest, items, user)
        counts = {s: sum(1 for r in results if r["status"] == s)
                  for s in ("accepted", "duplicate", "rejected")}
        answer: dict[str, Any] = {"received": len(results), **counts, "results": results}
        refused = sum(1 for r in results if r.get("reason") in FORBIDDEN)
        if refused:
            response.status_code = 403
            answer = {"detail": f"{refused} event(s) about households outside your org unit "
                                "were refused (see results)", **answer}
        return answer

    @app.get("/v1/alerts", tags=["alerts"])
    def alerts(user: RowUser, status: Status | None = None, level: WarningLevel | None = None,
               district: str | None = None,
               limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = INBOX_PAGE,
               offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
        """The inbox: warnings in the caller's org unit, newest raise last, a page at a time.

        Paged like the ledgers (``limit``, at most 1000, default 1000; ``offset``;
        ``next_offset`` is null on the last page). Without ``status`` or ``level``, a
        district or city reader's page is cut in the warehouse and ``total`` is null."""
        code = district_filter(user, district)
        fast = (None if status is not None or level is not None else
                services.ledger_page("warnings", user, None, code, limit + 1, offset))
        total: int | None
        if fast is not None:
            page, total = fast[:limit], None
            next_offset = offset + limit if len(fast) > limit else None
        else:
            rows = [r for r in services.ledger("warnings", user, None, code)
                    if (status is None or r["status"] == status)
                    and (level is None or r["level"] == level)]
            total = len(rows)
            page = rows[offset:offset + limit]
            next_offset = offset + len(page) if offset + len(page) < total else None
        assignees = services.assignees([r["warning_id"] for r in page])
        page = [r | {"assignee": assignees.get(r["warning_id"])} for r in page]
        services.users.audit(user, "alerts.list",
                             {"status": status, "level": level, "district": code,
                              "limit": limit, "offset": offset}, len(page))
        return {"count": len(page), "total": total, "offset": offset, "limit": limit,
                "next_offset": next_offset, "alerts": page}

    @app.get("/v1/alerts/stream", tags=["alerts"],
             response_class=StreamingResponse,
             responses={429: {"description": "Too many open streams (per user or in all)",
                              "content": _ERROR_BODY}})
    def alert_stream(request: Request, user: RowUser,
                     after: Annotated[int | None, Query(ge=0, le=MAX_POSITION)] = None
                     ) -> Response:
        """Server-sent events: each lifecycle record in the caller's scope, as it happens.

        At most 3 open streams per user and 100 in all (429 beyond). The stream closes
        (``event: closed``) once the token it was opened with stops working (expired,
        revoked, replaced, or the user disabled) or the user's role or scope changes."""
        release = streams.acquire(user.name)
        try:
            db = open_log(services.runtime.log.path)
            try:
                position = start_position(db, request, after)
            except BaseException:
                db.close()
                raise
        except BaseException:
            release()
            raise
        services.users.audit(user, "alerts.stream", {"from": position}, 0)
        token = request.headers.get("authorization", "").partition(" ")[2].strip()
        events = stream.alert_stream(db, request, user, position,
                                     recheck=lambda: services.users.lookup(token),
                                     release=release)
        return SlotStream(events, release, media_type="text/event-stream",
                          headers={"Cache-Control": "no-store"})

    def _act(user: User, warning_id: str, kind: str, note: str | None, response: Response,
             assignee: str | None = None) -> dict[str, Any]:
        row = services.find_warning(user, warning_id)
        if row is None:
            raise HTTPException(404, "no such warning")
        done = {"acknowledged": ("acknowledged", "resolved"), "resolved": ("resolved",),
                "assigned": ("resolved",)}[kind]
        if row["status"] in done:
            raise HTTPException(409, f"warning already {row['status']}")
        if row["household_id"] is None:  # a district surge (rules.surge): no household to name
            raise HTTPException(409, "a district surge warning takes no commands: it "
                                     "resolves itself at the first day close without a surge")
        if assignee is not None:
            _check_assignee(assignee, row)
        try:
            event_id = services.act(user, row, kind, note, assignee)
        except OwnershipRefused as exc:  # the household now belongs outside the caller's scope
            raise HTTPException(403, str(exc)) from exc
        services.users.audit(user, f"alerts.{kind}", {"warning_id": warning_id}, 1)
        if services.kafka is not None:  # the worker applies it; the mirror shows it later
            response.status_code = 202
            return {"event_id": event_id, "status": "published", "warning": row}
        after = services.find_warning(user, warning_id)
        return {"event_id": event_id, "warning": after}

    def _check_assignee(name: str, row: dict[str, Any]) -> None:
        assignee = services.users.get(name)
        if assignee is None or assignee.role not in ASSIGN_ROLES:
            raise HTTPException(422, "assignee: no such user who may act on warnings")
        if not in_scope(assignee, row["org_unit"]):
            raise HTTPException(422, "assignee: the warning lies outside the assignee's "
                                     "org unit")

    @app.post("/v1/alerts/{warning_id}/acknowledge", tags=["alerts"], responses=_PUBLISHED)
    def acknowledge(warning_id: str, user: RowUser, response: Response,
                    body: Note | None = None) -> dict[str, Any]:
        """Appends a ``warning.acknowledged`` event (stops escalation); 404 outside scope.

        200 with the updated warning on the embedded runtime; 202 on Kafka."""
        return _act(user, warning_id, "acknowledged", None, response)

    @app.post("/v1/alerts/{warning_id}/resolve", tags=["alerts"], responses=_PUBLISHED)
    def resolve(warning_id: str, user: RowUser, response: Response,
                body: Note | None = None) -> dict[str, Any]:
        """Appends a ``warning.resolved`` event with the note; 404 outside scope."""
        return _act(user, warning_id, "resolved", body.note if body else None, response)

    @app.post("/v1/alerts/{warning_id}/assign", tags=["alerts"], responses=_PUBLISHED)
    def assign(warning_id: str, body: Assignment, user: AssignUser,
               response: Response) -> dict[str, Any]:
        """Appends a ``warning.assigned`` event (escalation goes on); 404 outside scope,
        422 unless the assignee is a user whose org unit covers the warning's."""
        result = _act(user, warning_id, "assigned", None, response, body.assignee)
        if user.role not in ROW_ROLES:  # a cadre learns the outcome, not the row
            result.pop("warning", None)
        return result

    @app.get("/v1/ledgers/{name}", tags=["ledgers"])
    def ledger(name: LedgerName, user: RowUser, as_of: str | None = None,
               district: str | None = None,
               limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
               offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
        """A ledger as of an instant, limited to the caller's org unit.

        Paged with ``limit`` (at most 1000) and ``offset`` over the ledger's stable
        order (warnings: raise instant, then id). The page is cut *after* scoping,
        so offsets count only rows the caller may see. ``total`` is their number,
        except on the fast path: a district or city reader asking for a page gets
        it cut in the warehouse, and ``total`` is null there (``next_offset`` says
        whether more rows follow) so that a first page never reads a whole ledger.
        """
        code = district_filter(user, district)
        fast = (None if limit is None else
                services.ledger_page(name, user, _as_of(as_of), code, limit + 1, offset))
        total: int | None
        if fast is not None:  # limit + 1 rows from the warehouse: one more means "more"
            assert limit is not None
            page, total = fast[:limit], None
            next_offset = offset + limit if len(fast) > limit else None
        else:
            rows = services.ledger(name, user, _as_of(as_of), code)
            total = len(rows)
            page = rows[offset:] if limit is None else rows[offset:offset + limit]
            after = offset + len(page)
            next_offset = after if after < total else None
        services.users.audit(user, f"ledgers.{name}", {"as_of": as_of, "district": code,
                                                       "limit": limit, "offset": offset},
                             len(page))
        return {"count": len(page), "total": total, "offset": offset, "limit": limit,
                "next_offset": next_offset, "rows": page}

    @app.get("/v1/worklist", tags=["worklist"], response_model=Worklist)
    def worklist(user: IngestUser,
                 limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200) -> dict[str, Any]:
        """The caller's work list (cadres; chairs and city admins too): visits due within
        7 days or overdue, warnings assigned to her, guardianship gaps awaiting follow-up.
        In her scope, each section cut at ``limit``; no free text (``api.field``)."""
        result = services.worklist(user, limit)
        services.users.audit(user, "worklist", {"limit": limit},
                             sum(len(result[s]["rows"]) for s in ("visits", "warnings",
                                                                 "guardianship")))
        return result

    @app.get("/v1/kpis", tags=["analytics"])
    def kpis(user: KpiUser, as_of: str | None = None) -> dict[str, Any]:
        """Pseudonymous aggregates over the caller's org unit (no household ids)."""
        result = services.kpis(user, _as_of(as_of))
        services.users.audit(user, "kpis", {"as_of": as_of}, 0)
        return result

    def _sees(user: User, sub: Subscription) -> bool:
        """A subscription belongs to its author: only she, or a city admin, may list,
        delete or redeliver it or read its dead letters; anyone else gets 404."""
        if sub.owner == user.name:
            return True
        return user.role == CITY_ADMIN and in_scope(user, sub.org_unit)

    def _shown(user: User, sub: Subscription) -> dict[str, Any]:
        """The subscription as ``user`` may see it: nobody but its author sees where it
        delivers (the URL may carry a receiver's credentials, the address a person's)."""
        shown = sub.public()
        if sub.owner != user.name:
            for target in ("url", "address"):
                if target in shown:
                    shown[target] = None
            shown["target_hidden"] = True
        return shown

    @app.post("/v1/subscriptions", status_code=201, tags=["subscriptions"])
    def subscribe(sub: SubscriptionIn, user: SubscriberUser) -> dict[str, Any]:
        """Webhook or e-mail for alerts in an org unit within the caller's scope (a
        partner: for the referral records addressed to its agency there)."""
        org_unit_in_scope(user, sub.org_unit)
        if user.role == PARTNER and sub.channel == "kafka":  # district topics carry warnings
            raise HTTPException(422, "channel: a partner subscribes by webhook or email")
        if sub.channel == "kafka" and services.kafka is None:
            raise HTTPException(422, "channel: kafka needs the Kafka runtime "
                                     "(jiahe api --bootstrap HOST:PORT)")
        url, secret = (MAILTO + (sub.address or ""), "") if sub.channel == "email" else (
            sub.url or "", sub.secret or "")
        if sub.channel == "kafka" and services.kafka is not None:
            url = KAFKA_URL + services.kafka.topic_prefix
        created = services.subscriptions.create(
            user.name, sub.org_unit, sub.min_level, sub.rule_ids, url, secret, sub.channel,
            agency=user.agency if user.role == PARTNER else None,
            personal_data=sub.personal_data)
        return created.public()

    @app.get("/v1/subscriptions", tags=["subscriptions"])
    def subscriptions(user: SubscriberUser) -> dict[str, Any]:
        subs = [_shown(user, s) for s in services.subscriptions.all() if _sees(user, s)]
        return {"count": len(subs), "subscriptions": subs}

    @app.delete("/v1/subscriptions/{sub_id}", status_code=204, tags=["subscriptions"])
    def unsubscribe(sub_id: str, user: SubscriberUser) -> Response:
        sub = services.subscriptions.get(sub_id)
        if sub is None or not _sees(user, sub):
            raise HTTPException(404, "no such subscription")
        services.subscriptions.delete(sub_id)
        return Response(status_code=204)

    def _own_subscription(sub_id: str, user: User) -> None:
        sub = services.subscriptions.get(sub_id)
        if sub is None or not _sees(user, sub):
            raise HTTPException(404, "no such subscription")

    @app.get("/v1/subscriptions/{sub_id}/dead-letters", tags=["subscriptions"])
    def dead_letters(sub_id: str, user: SubscriberUser) -> dict[str, Any]:
        """Alerts this subscription could not deliver after every attempt, with the error."""
        _own_subscription(sub_id, user)
        letters = services.subscriptions.dead_letters(sub_id)
        services.users.audit(user, "subscriptions.dead_letters", {"subscription": sub_id},
                             len(letters))
        return {"count": len(letters), "dead_letters": letters}

    @app.post("/v1/subscriptions/{sub_id}/redeliver", tags=["subscriptions"])
    def redeliver(sub_id: str, user: SubscriberUser) -> dict[str, Any]:
        """Queue the dead-lettered alerts again (e.g. once the receiver is fixed)."""
        _own_subscription(sub_id, user)
        requeued = services.subscriptions.redeliver(sub_id)
        services.worker.wake()
        return {"requeued": requeued}

    app.include_router(silence_router(services))
    app.include_router(after_alert_router(services))
    app.include_router(referral_router(services))
    app.include_router(break_glass_router(services))
    app.include_router(workspace_router)  # the chairs' workspace page: /, /workspace/
    app.include_router(field_router)  # the cadres' field app: /field/
    return app
