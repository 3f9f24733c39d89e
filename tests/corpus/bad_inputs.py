"""A corpus of bad (and valid-but-weird) input, one entry per *kind*.

Each entry is ``Entry(kind_id, raw, expected)``:

* ``expected`` is a fragment of the rejection reason when DESIGN.md says the
  input must be rejected ("rejected, never dropped": dead-lettered with its
  reason, processing goes on);
* ``expected is ACCEPTED`` (``None``) when the input is valid, however odd it
  looks (free-text notes with unusual unicode or injection-looking text are
  personal data the field app typed: they must be accepted and stored
  verbatim, and never executed);
* ``expected == DUPLICATE`` for an exact re-send of :data:`ORIGINAL`;
* ``expected == SAME_ID`` for ORIGINAL re-sent with its UUID spelled otherwise
  (upper case, no hyphens): a duplicate or a rejection, never a new event.

The kinds in :data:`NEEDS_ORIGINAL` depend on history: they reuse
:data:`ORIGINAL`'s ``event_id``. On their own they decode fine; in a
stream they must come after ``ORIGINAL`` (see :func:`stream`): an exact
re-send is a duplicate, changed content a conflict (rejected, ``conflict``).

Decisions taken per DESIGN.md where it is not explicit:

* A JSON string with a lone surrogate escape (``"\\ud800"``) is not Unicode
  text; it cannot be stored as UTF-8, so the event is rejected as not valid
  JSON (and dead-lettered with its raw bytes). NUL (``\\u0000``), RTL
  override, zero-width and astral characters in notes are valid text.
* Timestamps must be ISO 8601 *strings* with an offset; Unix numbers are a
  wrong type. Instants before 2000 or from 2100 on are refused as a
  field-app clock error ("far in the future").
* ``schema_version`` is an int ≥ 1: the strings ``"1"``, floats and booleans
  are wrong types even where a lax parser could coerce them.
* A ``household_id`` is a non-empty identifier of at most 200 characters.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

from events.codec import MAX_EVENT_BYTES


class Entry(NamedTuple):
    kind_id: str
    raw: bytes
    expected: str | None


ACCEPTED: None = None
DUPLICATE = "<duplicate>"
#: The same UUID spelled differently: a duplicate, or a rejection — never a new event.
SAME_ID = "<same-uuid>"
CONFLICT = "conflict"

_NS = uuid.UUID("6f1c1c1e-6a51-4b4e-9a0b-0c0ffee0c0de")
ORG = "230102001001"
HOUSEHOLD = "hh-corpus"
OCCURRED = "2026-03-01T08:00:00+08:00"


def eid(name: str) -> str:
    return str(uuid.uuid5(_NS, name))


def _visit(name: str, **changes: Any) -> dict[str, Any]:
    """A valid visit (its own event_id), with top-level fields changed or removed."""
    obj: dict[str, Any] = {
        "event_id": eid(name),
        "type": "screening.visit_recorded",
        "schema_version": 1,
        "occurred_at": OCCURRED,
        "org_unit": ORG,
        "household_id": HOUSEHOLD,
        "actor": "cadre-7",
        "data": {"indicators": ["economic_hardship"], "notes": "ok"},
    }
    for key, value in changes.items():
        if value is _DROP:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


def _petition(name: str, **data_changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"channel": "hotline_12338", "category": "other", "urgent": False}
    for key, value in data_changes.items():
        if value is _DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return _visit(name, type="petition.received", data=data)


def _typed(name: str, event_type: str, data: Any) -> dict[str, Any]:
    return _visit(name, type=event_type, data=data)


_DROP = object()


def _j(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def _ja(obj: Any) -> bytes:
    """ASCII-escaped JSON (``\\uXXXX`` escapes survive as written)."""
    return json.dumps(obj, ensure_ascii=True).encode()


#: The event that the history-dependent kinds refer to.
ORIGINAL: bytes = _j(_visit("original", data={"indicators": ["isolation"], "notes": "first"}))

_SQL = "'; DROP TABLE events; --"
#: Beyond 64 bits: JSON allows it; a tolerant reader keeps it (DESIGN: kept in the log).
BIG_INT = 123456789012345678901234567890
_TEMPLATE = "{{7*7}} ${7*7} <%= 7*7 %>"
_SCRIPT = "<script>alert('x')</script>"

_VALID_TEMPLATE = _visit("template-like")
_NOTE_NUL = "before\u0000after"
_NOTE_RTL = "abc\u202edcba \u2066isolate\u2069"
_NOTE_ODD = "👩‍👧 e\u0301 \u200b\u200d \ufeff 𠀀 家和"


def _nested(levels: int) -> Any:
    """Arrays and objects alternating, ``levels`` deep, around one integer."""
    value: Any = 1
    for level in range(levels):
        value = {"k": value} if level % 2 else [value]
    return value


def _entries() -> Iterator[Entry]:
    v = _visit
    # ---------------------------------------------------------------- malformed JSON
    good = _j(v("trunc"))
    yield Entry("json-truncated", good[: len(good) // 2], "not valid JSON")
    yield Entry("json-trailing-comma", good[:-1] + b",}", "not valid JSON")
    yield Entry("json-nan", good.replace(b'"schema_version": 1', b'"schema_version": NaN'),
                "not valid JSON")
    yield Entry("json-infinity", good.replace(b'"schema_version": 1',
                                              b'"schema_version": Infinity'), "not valid JSON")
    yield Entry("json-single-quotes", good.replace(b'"', b"'"), "not valid JSON")
    yield Entry("json-bom-only", b"\xef\xbb\xbf", "not valid JSON")
    yield Entry("json-bom-then-object", b"\xef\xbb\xbf" + _j(v("bom")), "not valid JSON")
    yield Entry("json-empty-object", b"{}", "type: missing")
    yield Entry("json-array", b"[" + _j(v("arr")) + b"]", "must be a JSON object")
    yield Entry("json-string", b'"screening.visit_recorded"', "must be a JSON object")
    yield Entry("json-number", b"42", "must be a JSON object")
    yield Entry("json-null", b"null", "must be a JSON object")
    yield Entry("json-true", b"true", "must be a JSON object")
    yield Entry("json-two-objects", _j(v("two-a")) + b" " + _j(v("two-b")), "not valid JSON")
    yield Entry("json-comment", b"/* a comment */ " + _j(v("comment")), "not valid JSON")
    yield Entry("json-invalid-utf8", good.replace(b'"ok"', b'"\xff\xfe"'), "not valid JSON")
    yield Entry("json-raw-control-char", good.replace(b'"ok"', b'"a\tb"'), "not valid JSON")
    yield Entry("json-deep-nesting", b"[" * 5000 + b"]" * 5000, "not valid JSON")
    yield Entry("json-huge-number", good.replace(b'"schema_version": 1',
                                                 b'"schema_version": 1e400'),
                "not valid JSON")
    # ---------------------------------------------------------------- envelope types
    yield Entry("event-id-not-uuid", _j(v("x", event_id="not-a-uuid")), "event_id")
    yield Entry("event-id-number", _j(v("x", event_id=12345)), "event_id")
    yield Entry("event-id-empty", _j(v("x", event_id="")), "event_id")
    yield Entry("event-id-null", _j(v("x", event_id=None)), "event_id")
    yield Entry("event-id-missing", _j(v("x", event_id=_DROP)), "event_id")
    yield Entry("type-unknown", _j(v("t1", type="screening.visit_deleted")), "unknown event type")
    yield Entry("type-number", _j(v("t2", type=7)), "unknown event type")
    yield Entry("type-missing", _j(v("t3", type=_DROP)), "type: missing")
    yield Entry("type-wrong-case", _j(v("t4", type="Screening.Visit_Recorded")),
                "unknown event type")
    yield Entry("schema-version-string", _j(v("s1", schema_version="1")), "schema_version")
    yield Entry("schema-version-float", _j(v("s2", schema_version=1.5)), "schema_version")
    yield Entry("schema-version-bool", _j(v("s3", schema_version=True)), "schema_version")
    yield Entry("schema-version-zero", _j(v("s4", schema_version=0)), "schema_version")
    yield Entry("schema-version-negative", _j(v("s5", schema_version=-1)), "schema_version")
    yield Entry("schema-version-huge", _j(v("s6", schema_version=10**30)), "schema_version")
    yield Entry("schema-version-newer", _j(v("s7", schema_version=2)), "newer than this reader")
    yield Entry("schema-version-missing", _j(v("s8", schema_version=_DROP)), "schema_version")
    yield Entry("actor-number", _j(v("a1", actor=42)), "actor")
    yield Entry("actor-too-long", _j(v("a2", actor="c" * 201)), "actor")
    yield Entry("data-missing", _j(v("d1", data=_DROP)), "data")
    yield Entry("data-array", _j(v("d2", data=["injury_observed"])), "data")
    yield Entry("data-string", _j(v("d3", data="injury_observed")), "data")
    yield Entry("data-null", _j(v("d4", data=None)), "data")
    # ---------------------------------------------------------------- data fields
    yield Entry("urgent-string-yes", _j(_petition("u1", urgent="yes")), "data.urgent")
    yield Entry("urgent-int-1", _j(_petition("u2", urgent=1)), "data.urgent")
    yield Entry("urgent-string-true", _j(_petition("u3", urgent="true")), "data.urgent")
    yield Entry("urgent-missing", _j(_petition("u4", urgent=_DROP)), "data.urgent")
    yield Entry("channel-unknown", _j(_petition("c1", channel="fax")), "data.channel")
    yield Entry("category-unknown", _j(_petition("c2", category="DOMESTIC_VIOLENCE")),
                "data.category")
    yield Entry("indicators-string", _j(v("i1", data={"indicators": "injury_observed"})),
                "data.indicators")
    yield Entry("indicators-unknown-word", _j(v("i2", data={"indicators": ["bruises"]})),
                "data.indicators")
    yield Entry("indicators-null", _j(v("i3", data={"indicators": None})), "data.indicators")
    yield Entry("indicators-missing", _j(v("i4", data={"notes": "no list"})), "data.indicators")
    yield Entry("notes-number", _j(v("i5", data={"indicators": [], "notes": 3})), "data.notes")
    yield Entry("mediation-outcome-unknown",
                _j(_typed("m1", "mediation.concluded", {"mediation_id": "m", "outcome": "won"})),
                "data.outcome")
    yield Entry("mediation-id-empty",
                _j(_typed("m2", "mediation.opened", {"mediation_id": ""})), "data.mediation_id")
    yield Entry("followup-action-unknown",
                _j(_typed("f1", "followup.recorded", {"action": "prayer"})), "data.action")
    yield Entry("gap-child-ref-missing",
                _j(_typed("g1", "child.guardianship_gap_recorded", {"reason": "x"})),
                "data.child_ref")
    yield Entry("case-resolution-unknown",
                _j(_typed("r1", "case.resolved", {"resolution": "done"})), "data.resolution")
    yield Entry("ack-warning-id-empty",
                _j(_typed("k1", "warning.acknowledged", {"warning_id": "", "by": "c"})),
                "data.warning_id")
    yield Entry("resolve-by-missing",
                _j(_typed("k2", "warning.resolved", {"warning_id": "w-1"})), "data.by")
    # ---------------------------------------------------------------- v2: households
    reg, move = "household.registered", "household.transferred"
    yield Entry("registered-flags-missing", _j(_typed("hr1", reg, {"notes": "x"})),
                "data.flags: Field required")
    yield Entry("registered-flags-string", _j(_typed("hr2", reg, {"flags": "key_household"})),
                "data.flags: Input should be a valid list")
    yield Entry("registered-flags-null", _j(_typed("hr3", reg, {"flags": None})), "data.flags")
    yield Entry("registered-flags-unknown-word",
                _j(_typed("hr4", reg, {"flags": ["rural", "vip"]})), "data.flags.1")
    yield Entry("registered-flags-wrong-case",
                _j(_typed("hr5", reg, {"flags": ["KEY_HOUSEHOLD"]})), "data.flags.0")
    yield Entry("registered-flags-number", _j(_typed("hr6", reg, {"flags": [1]})),
                "data.flags.0")
    yield Entry("registered-flags-indicator-word",
                _j(_typed("hr7", reg, {"flags": ["isolation"]})), "data.flags.0")
    yield Entry("registered-notes-number", _j(_typed("hr8", reg, {"flags": [], "notes": 3})),
                "data.notes")
    yield Entry("registered-notes-over-20k-chars",
                _j(_typed("hr9", reg, {"flags": [], "notes": "z" * 20_001})), "data.notes")
    yield Entry("registered-data-array", _j(_typed("hr10", reg, ["key_household"])), "data")
    yield Entry("registered-schema-version-newer",
                _j(v("hr11", type=reg, schema_version=2, data={"flags": []})),
                "newer than this reader")
    yield Entry("registered-org-street-level",
                _j(v("hr12", type=reg, org_unit="230102001000", data={"flags": []})),
                "not a community-level code")
    to = "230103002004"
    yield Entry("transferred-to-missing", _j(_typed("ht1", move, {"reason": "moved"})),
                "data.to_org_unit: Field required")
    yield Entry("transferred-to-street-level",
                _j(_typed("ht2", move, {"to_org_unit": "230103002000", "reason": "moved"})),
                "data.to_org_unit: org unit '230103002000' is not a community-level code")
    yield Entry("transferred-to-district-level",
                _j(_typed("ht3", move, {"to_org_unit": "230103000000", "reason": "moved"})),
                "data.to_org_unit")
    yield Entry("transferred-to-11-digits",
                _j(_typed("ht4", move, {"to_org_unit": "23010300200", "reason": "moved"})),
                "data.to_org_unit")
    yield Entry("transferred-to-number",
                _j(_typed("ht5", move, {"to_org_unit": 230103002004, "reason": "moved"})),
                "data.to_org_unit")
    yield Entry("transferred-to-fullwidth-digits",
                _j(_typed("ht6", move, {"to_org_unit": "２３０１０３００２００４",
                                        "reason": "moved"})), "data.to_org_unit")
    yield Entry("transferred-to-null",
                _j(_typed("ht7", move, {"to_org_unit": None, "reason": "moved"})),
                "data.to_org_unit")
    yield Entry("transferred-reason-missing", _j(_typed("ht8", move, {"to_org_unit": to})),
                "data.reason: Field required")
    yield Entry("transferred-reason-unknown",
                _j(_typed("ht9", move, {"to_org_unit": to, "reason": "eviction"})),
                "data.reason")
    yield Entry("transferred-reason-free-text",
                _j(_typed("ht10", move, {"to_org_unit": to, "reason": "搬家到南岗区"})),
                "data.reason")
    yield Entry("transferred-data-missing", _j(v("ht11", type=move, data=_DROP)), "data")
    yield Entry("transferred-org-number",
                _j(v("ht12", type=move, org_unit=230102001001,
                     data={"to_org_unit": to, "reason": "moved"})), "org_unit")
    # ---------------------------------------------------------------- v2: after the alert
    assessed, reopened = "warning.assessed", "warning.reopened"
    w = "w-0123456789abcdef"
    yield Entry("assessed-risk-missing",
                _j(_typed("wa1", assessed, {"warning_id": w, "by": "c"})),
                "data.risk: Field required")
    yield Entry("assessed-risk-unknown",
                _j(_typed("wa2", assessed, {"warning_id": w, "by": "c", "risk": "critical"})),
                "data.risk")
    yield Entry("assessed-risk-wrong-case",
                _j(_typed("wa3", assessed, {"warning_id": w, "by": "c", "risk": "HIGH"})),
                "data.risk")
    yield Entry("assessed-risk-number",
                _j(_typed("wa4", assessed, {"warning_id": w, "by": "c", "risk": 3})),
                "data.risk")
    yield Entry("assessed-risk-list",
                _j(_typed("wa5", assessed, {"warning_id": w, "by": "c", "risk": ["high"]})),
                "data.risk")
    yield Entry("assessed-warning-id-missing",
                _j(_typed("wa6", assessed, {"by": "c", "risk": "low"})),
                "data.warning_id: Field required")
    yield Entry("assessed-warning-id-empty",
                _j(_typed("wa7", assessed, {"warning_id": "", "by": "c", "risk": "low"})),
                "data.warning_id")
    yield Entry("assessed-by-missing",
                _j(_typed("wa8", assessed, {"warning_id": w, "risk": "low"})), "data.by")
    yield Entry("assessed-note-number",
                _j(_typed("wa9", assessed, {"warning_id": w, "by": "c", "risk": "low",
                                            "note": 7})), "data.note")
    yield Entry("assessed-note-over-20k-chars",
                _j(_typed("wa10", assessed, {"warning_id": w, "by": "c", "risk": "low",
                                             "note": "n" * 20_001})), "data.note")
    yield Entry("reopened-reason-missing",
                _j(_typed("wr1", reopened, {"warning_id": w, "by": "c"})),
                "data.reason: Field required")
    yield Entry("reopened-reason-number",
                _j(_typed("wr2", reopened, {"warning_id": w, "by": "c", "reason": 1})),
                "data.reason")
    yield Entry("reopened-by-empty",
                _j(_typed("wr3", reopened, {"warning_id": w, "by": "", "reason": "x"})),
                "data.by")
    yield Entry("reopened-warning-id-null",
                _j(_typed("wr4", reopened, {"warning_id": None, "by": "c", "reason": "x"})),
                "data.warning_id")
    sent = "referral.sent"
    ok_sent = {"referral_id": "r-1", "agency": "police", "basis": "emergency"}

    def referral(name: str, event_type: str = sent, **changes: Any) -> bytes:
        data = dict(ok_sent) if event_type == sent else {"referral_id": "r-1", "by": "p"}
        for key, value in changes.items():
            if value is _DROP:
                data.pop(key, None)
            else:
                data[key] = value
        return _j(_typed(name, event_type, data))

    yield Entry("referral-id-missing", referral("rs1", referral_id=_DROP),
                "data.referral_id: Field required")
    yield Entry("referral-id-empty", referral("rs2", referral_id=""), "data.referral_id")
    yield Entry("referral-id-number", referral("rs3", referral_id=17), "data.referral_id")
    yield Entry("referral-agency-unknown", referral("rs4", agency="fbi"), "data.agency")
    yield Entry("referral-agency-missing", referral("rs5", agency=_DROP),
                "data.agency: Field required")
    yield Entry("referral-agency-list", referral("rs6", agency=["police"]), "data.agency")
    yield Entry("referral-agency-chinese-name", referral("rs7", agency="公安"), "data.agency")
    yield Entry("referral-basis-unknown", referral("rs8", basis="verbal"), "data.basis")
    yield Entry("referral-basis-missing", referral("rs9", basis=_DROP),
                "data.basis: Field required")
    yield Entry("referral-basis-bool", referral("rs10", basis=True), "data.basis")
    yield Entry("referral-warning-id-empty", referral("rs11", warning_id=""), "data.warning_id")
    yield Entry("referral-warning-id-number", referral("rs12", warning_id=5), "data.warning_id")
    yield Entry("referral-note-number", referral("rs13", note=5), "data.note")
    yield Entry("referral-data-array", _j(_typed("rs14", sent, ["r-1", "police"])), "data")
    yield Entry("referral-accepted-id-missing",
                referral("ra1", "referral.accepted", referral_id=_DROP), "data.referral_id")
    yield Entry("referral-accepted-by-missing",
                referral("ra2", "referral.accepted", by=_DROP), "data.by: Field required")
    yield Entry("referral-declined-reason-missing",
                referral("ra3", "referral.declined"), "data.reason: Field required")
    yield Entry("referral-declined-reason-number",
                referral("ra4", "referral.declined", reason=0), "data.reason")
    yield Entry("referral-closed-outcome-missing",
                referral("ra5", "referral.closed"), "data.outcome: Field required")
    yield Entry("referral-closed-outcome-unknown",
                referral("ra6", "referral.closed", outcome="resolved"), "data.outcome")
    yield Entry("referral-closed-outcome-null",
                referral("ra7", "referral.closed", outcome=None), "data.outcome")
    yield Entry("referral-closed-id-number",
                referral("ra8", "referral.closed", referral_id=1, outcome="no_service"),
                "data.referral_id")
    recorded, withdrawn = "consent.recorded", "consent.withdrawn"
    yield Entry("consent-agencies-empty",
                _j(_typed("cr1", recorded, {"agencies": [], "by": "c"})),
                "data.agencies: List should have at least 1 item")
    yield Entry("consent-agencies-missing", _j(_typed("cr2", recorded, {"by": "c"})),
                "data.agencies: Field required")
    yield Entry("consent-agencies-string",
                _j(_typed("cr3", recorded, {"agencies": "police", "by": "c"})),
                "data.agencies")
    yield Entry("consent-agencies-unknown",
                _j(_typed("cr4", recorded, {"agencies": ["police", "fbi"], "by": "c"})),
                "data.agencies.1")
    yield Entry("consent-agencies-null",
                _j(_typed("cr5", recorded, {"agencies": None, "by": "c"})), "data.agencies")
    yield Entry("consent-by-missing",
                _j(_typed("cr6", recorded, {"agencies": ["police"]})), "data.by")
    yield Entry("consent-withdrawn-agencies-empty",
                _j(_typed("cw1", withdrawn, {"agencies": [], "by": "c"})), "data.agencies")
    yield Entry("consent-withdrawn-agency-number",
                _j(_typed("cw2", withdrawn, {"agencies": [1], "by": "c"})), "data.agencies.0")
    yield Entry("consent-withdrawn-schema-version-newer",
                _j(v("cw3", type=withdrawn, schema_version=2,
                     data={"agencies": ["police"], "by": "c"})), "newer than this reader")
    # ---------------------------------------------------------------- org units
    yield Entry("org-11-digits", _j(v("o1", org_unit="23010200100")), "org_unit")
    yield Entry("org-13-digits", _j(v("o2", org_unit="2301020010011")), "org_unit")
    yield Entry("org-letters", _j(v("o3", org_unit="23010200100A")), "org_unit")
    yield Entry("org-street-level", _j(v("o4", org_unit="230102001000")),
                "not a community-level code")
    yield Entry("org-district-level", _j(v("o5", org_unit="230102000000")),
                "not a community-level code")
    yield Entry("org-city-level", _j(v("o6", org_unit="230100000000")),
                "not a community-level code")
    yield Entry("org-zero-province", _j(v("o7", org_unit="000102001001")), "org_unit")
    yield Entry("org-fullwidth-digits", _j(v("o8", org_unit="２３０１０２００１００１")),
                "org_unit")
    yield Entry("org-arabic-indic-digits", _j(v("o9", org_unit="٢٣٠١٠٢٠٠١٠٠١")), "org_unit")
    yield Entry("org-number", _j(v("o10", org_unit=230102001001)), "org_unit")
    yield Entry("org-village-without-township", _j(v("o11", org_unit="230102000001")),
                "org_unit")
    # ---------------------------------------------------------------- timestamps
    yield Entry("ts-no-offset", _j(v("ts1", occurred_at="2026-03-01T08:00:00")), "occurred_at")
    yield Entry("ts-date-only", _j(v("ts2", occurred_at="2026-03-01")), "occurred_at")
    yield Entry("ts-garbage", _j(v("ts3", occurred_at="yesterday at noon")), "occurred_at")
    yield Entry("ts-unix-number", _j(v("ts4", occurred_at=1772323200)), "occurred_at")
    # A Unix time in a string is still not ISO 8601 (and carries no offset).
    yield Entry("ts-unix-seconds-in-string", _j(v("ts11", occurred_at="1772323200")),
                "occurred_at")
    yield Entry("ts-unix-millis-in-string", _j(v("ts12", occurred_at="1772323200000")),
                "occurred_at")
    yield Entry("recorded-at-unix-in-string", _j(v("ts13", recorded_at="1772323500")),
                "recorded_at")
    yield Entry("ts-year-0001", _j(v("ts5", occurred_at="0001-01-01T00:00:00Z")), "occurred_at")
    yield Entry("ts-far-future-9999", _j(v("ts6", occurred_at="9999-12-31T23:59:59Z")),
                "occurred_at")
    yield Entry("ts-missing", _j(v("ts7", occurred_at=_DROP)), "occurred_at")
    yield Entry("ts-invalid-date", _j(v("ts8", occurred_at="2026-02-30T08:00:00Z")),
                "occurred_at")
    yield Entry("recorded-at-no-offset", _j(v("ts9", recorded_at="2026-03-01T08:05:00")),
                "recorded_at")
    yield Entry("recorded-at-number", _j(v("ts10", recorded_at=1772323500)), "recorded_at")
    # ---------------------------------------------------------------- household
    yield Entry("household-missing", _j(v("h1", household_id=_DROP)), "household_id")
    yield Entry("household-empty", _j(v("h2", household_id="")), "household_id")
    yield Entry("household-null", _j(v("h3", household_id=None)), "household_id")
    yield Entry("household-number", _j(v("h4", household_id=1234)), "household_id")
    yield Entry("household-10k-chars", _j(v("h5", household_id="h" * 10_000)), "household_id")
    # ---------------------------------------------------------------- size
    big = v("big", data={"indicators": [], "notes": "x" * (MAX_EVENT_BYTES + 10)})
    yield Entry("oversize-payload", _j(big), "larger than")
    huge_notes = v("notes-too-long", data={"indicators": [], "notes": "y" * 20_001})
    yield Entry("notes-over-20k-chars", _j(huge_notes), "data.notes")
    # ---------------------------------------------------------------- unicode
    yield Entry("unicode-lone-surrogate-escape",
                _ja(v("sur", data={"indicators": [], "notes": "PLACEHOLDER"})).replace(
                    b"PLACEHOLDER", b"\\ud800"), "not valid JSON")
    yield Entry("unicode-nul-in-notes",
                _ja(v("nul", data={"indicators": [], "notes": _NOTE_NUL})), ACCEPTED)
    yield Entry("unicode-rtl-override-in-notes",
                _j(v("rtl", data={"indicators": [], "notes": _NOTE_RTL})), ACCEPTED)
    yield Entry("unicode-zwj-combining-astral-in-notes",
                _j(v("odd", data={"indicators": [], "notes": _NOTE_ODD})), ACCEPTED)
    yield Entry("unicode-cjk-household",
                _j(v("cjk-hh", household_id="家-哈尔滨-001")), ACCEPTED)
    # ---------------------------------------------------------------- injection-looking
    yield Entry("injection-sql-in-notes",
                _j(v("sql", data={"indicators": [], "notes": _SQL})), ACCEPTED)
    yield Entry("injection-template-in-notes",
                _j(v("tpl", data={"indicators": [], "notes": _TEMPLATE})), ACCEPTED)
    yield Entry("injection-script-in-notes",
                _j(v("js", data={"indicators": [], "notes": _SCRIPT})), ACCEPTED)
    yield Entry("injection-sql-household-id",
                _j(v("sql-hh", household_id="x'); DELETE FROM events; --")), ACCEPTED)
    # ---------------------------------------------------------------- tolerated extras
    yield Entry("unknown-extra-fields-kept",
                _j({**v("extra"), "future_field": {"nested": [1, 2]}}), ACCEPTED)
    # An integer beyond 64 bits cannot be kept exactly (JSON parsers turn it into a
    # float): refused with a reason rather than silently changed in the log.
    yield Entry("unknown-extra-field-big-integer",
                _j({**v("extra-big"), "future_counter": BIG_INT}), "64-bit")
    # Deep nesting under an unknown key: 40 levels are tolerated; 300 crashed the codec
    # (the fingerprint's serialiser stops at 254 levels), which would have stopped a
    # worker on that message. Refused with a reason now, like any bad input.
    yield Entry("unknown-extra-field-nested-40-deep",
                _j({**v("nested-40"), "future_tree": _nested(40)}), ACCEPTED)
    yield Entry("unknown-extra-field-nested-300-deep",
                _j({**v("nested-300"), "future_tree": _nested(300)}), "nested more than")
    # ---------------------------------------------------------------- history
    yield Entry("dup-exact-resend", ORIGINAL, DUPLICATE)
    conflict = json.loads(ORIGINAL)
    conflict["data"]["indicators"] = ["injury_observed"]
    yield Entry("conflict-reused-id", _j(conflict), CONFLICT)
    # DESIGN: event_id is a UUID and a repeated id is a duplicate. UUIDs are
    # case-insensitive and the hyphens are notation, so these name ORIGINAL's id.
    upper = json.loads(ORIGINAL)
    upper["event_id"] = upper["event_id"].upper()
    yield Entry("dup-event-id-uppercase", _j(upper), SAME_ID)
    bare = json.loads(ORIGINAL)
    bare["event_id"] = bare["event_id"].replace("-", "")
    yield Entry("dup-event-id-without-hyphens", _j(bare), SAME_ID)


CORPUS: list[Entry] = list(_entries())
assert len({e.kind_id for e in CORPUS}) == len(CORPUS), "kind ids must be unique"

#: Kinds that need ``ORIGINAL`` earlier in the stream.
NEEDS_ORIGINAL = frozenset({
    "dup-exact-resend", "conflict-reused-id", "dup-event-id-uppercase",
    "dup-event-id-without-hyphens",
})

#: Text that valid entries must keep verbatim wherever the event is stored.
VERBATIM: dict[str, str] = {
    "unicode-nul-in-notes": _NOTE_NUL,
    "unicode-rtl-override-in-notes": _NOTE_RTL,
    "unicode-zwj-combining-astral-in-notes": _NOTE_ODD,
    "injection-sql-in-notes": _SQL,
    "injection-template-in-notes": _TEMPLATE,
    "injection-script-in-notes": _SCRIPT,
}

REJECTED = [e for e in CORPUS if e.expected not in (ACCEPTED, DUPLICATE, SAME_ID)]
SAME_UUID = [e for e in CORPUS if e.expected == SAME_ID]
VALID = [e for e in CORPUS if e.expected is ACCEPTED]


def stream() -> list[bytes]:
    """ORIGINAL followed by the whole corpus (so duplicates and conflicts are real)."""
    return [ORIGINAL, *(e.raw for e in CORPUS)]


def decode_expectation(entry: Entry) -> str | None:
    """What ``decode`` alone must say: a reason fragment, or None for "decodes"."""
    if entry.kind_id in NEEDS_ORIGINAL:
        return None
    return entry.expected
