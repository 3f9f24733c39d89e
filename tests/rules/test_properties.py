"""Properties of the engine over random event streams (DESIGN.md "Architecture" and
"Processing order and time"):

(a) restarting anywhere (states serialized with to_bytes/from_bytes) changes no record;
(b) exact duplicate deliveries injected anywhere change no record;
(c) processing each household on its own gives, per household, the same records;
(d) received = processed + duplicates + rejected, with the expected split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from rules.engine import warning_id_for
from rules.replay import Replay
from rules.state import HouseholdState
from tests.helpers import (
    DAY,
    HOUR,
    T0,
    ack,
    case_resolved,
    engine,
    event_id,
    followup,
    gap,
    line,
    mediation_concluded,
    mediation_opened,
    petition,
    resolve,
    restored,
    visit,
)

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HOUSEHOLDS = ["h1", "h2", "h3"]
ORGS = ["230102001001", "230102001002", "230184105203"]
INDICATORS = [
    "marital_conflict",
    "threats",
    "domestic_violence_signs",
    "injury_observed",
    "sexual_violence_signs",
    "child_neglect",
    "guardianship_gap",
    "intellectual_disability",
    "economic_hardship",
    "alcohol_abuse",
    "isolation",
]
CATEGORIES = [
    "marriage_family_dispute",
    "domestic_violence",
    "sexual_assault",
    "child_rights",
    "property_rights",
    "other",
]
#: Which rules an event type can trigger (so commands name plausible warning ids).
RULES_OF = {
    "screening.visit_recorded": ["violence-injury", "escalating-dispute", "vulnerable-person-harm"],
    "petition.received": ["violence-injury", "repeat-petitions"],
    "child.guardianship_gap_recorded": ["guardianship-no-followup"],
    "mediation.concluded": ["mediation-failed"],
}
INVALID_LINES = [
    "{not json",
    '{"type": "petition.recieved"}',
    json.dumps(
        {
            "event_id": "not-a-uuid",
            "type": "followup.recorded",
            "schema_version": 1,
            "occurred_at": "2026-03-01T08:00:00Z",
            "org_unit": "230102001001",
            "household_id": "h1",
            "data": {"action": "home_visit"},
        }
    ),
    json.dumps(
        {
            "event_id": event_id("bad-org"),
            "type": "followup.recorded",
            "schema_version": 1,
            "occurred_at": "2026-03-01T08:00:00Z",
            "org_unit": "230102000000",
            "household_id": "h1",
            "data": {"action": "home_visit"},
        }
    ),
]


@dataclass(frozen=True)
class Item:
    line: str
    tag: str  # "valid" | "conflict" | "invalid"
    household: str | None = None
    occurred: int | None = None


@dataclass(frozen=True)
class Stream:
    items: tuple[Item, ...]

    @property
    def lines(self) -> list[str]:
        return [item.line for item in self.items]

    @property
    def as_of(self) -> int:
        times = [i.occurred for i in self.items if i.tag == "valid"]
        return max(times) if times else T0


times = st.builds(
    lambda day, hour, jitter: T0 + day * DAY + hour * HOUR + jitter,
    st.integers(0, 75),
    st.sampled_from([0, 0, 0, 1, 6, 12, 23]),
    st.sampled_from([0, 0, 0, 1, -1]),
)


@st.composite
def streams(draw, max_size: int = 40) -> Stream:
    n = draw(st.integers(1, max_size))
    items: list[Item] = []
    triggers: list[tuple[str, str, str]] = []  # (type, household, event_id)
    for i in range(n):
        hh = draw(st.sampled_from(HOUSEHOLDS))
        at = draw(times)
        org = draw(st.sampled_from(ORGS))
        eid = event_id(f"prop-{i}")
        kind = draw(
            st.sampled_from(
                [
                    "visit",
                    "visit",
                    "visit",
                    "petition",
                    "petition",
                    "petition",
                    "opened",
                    "concluded",
                    "followup",
                    "gap",
                    "gap",
                    "restored",
                    "case",
                    "ack",
                    "ack",
                    "resolve",
                    "resolve",
                    "conflict",
                    "invalid",
                ]
            )
        )
        if kind == "visit":
            indicators = draw(st.lists(st.sampled_from(INDICATORS), max_size=4, unique=True))
            text, type_ = visit(hh, at, indicators, org, eid), "screening.visit_recorded"
        elif kind == "petition":
            text = petition(
                hh, at, draw(st.sampled_from(CATEGORIES)), draw(st.booleans()), org=org, eid=eid
            )
            type_ = "petition.received"
        elif kind == "opened":
            text, type_ = mediation_opened(hh, at, org=org, eid=eid), "mediation.opened"
        elif kind == "concluded":
            outcome = draw(st.sampled_from(["failed", "failed", "reconciled", "agreement"]))
            text = mediation_concluded(hh, at, outcome, org=org, eid=eid)
            type_ = "mediation.concluded"
        elif kind == "followup":
            text, type_ = followup(hh, at, org=org, eid=eid), "followup.recorded"
        elif kind == "gap":
            text, type_ = gap(hh, at, org=org, eid=eid), "child.guardianship_gap_recorded"
        elif kind == "restored":
            text, type_ = restored(hh, at, org=org, eid=eid), "child.guardianship_restored"
        elif kind == "case":
            text, type_ = case_resolved(hh, at, org=org, eid=eid), "case.resolved"
        elif kind in ("ack", "resolve"):
            if triggers and draw(st.integers(0, 9)) > 0:
                trigger_type, trigger_hh, trigger_id = draw(st.sampled_from(triggers))
                rule_id = draw(st.sampled_from(RULES_OF[trigger_type]))
                warning_id = warning_id_for(rule_id, trigger_hh, trigger_id)
                if draw(st.integers(0, 9)) > 0:
                    hh = trigger_hh  # usually the warning's household; else a mismatch
            else:
                warning_id = "w-" + draw(st.sampled_from(["0" * 16, "f" * 16]))
            command = ack if kind == "ack" else resolve
            text, type_ = command(hh, warning_id, at, org=org, eid=eid), "command"
        elif kind == "conflict":
            originals = [item for item in items if item.tag == "valid"]
            if not originals:
                continue
            original = draw(st.sampled_from(originals))
            obj = json.loads(original.line)
            obj["occurred_at"] = json.loads(visit("x", original.occurred + HOUR, []))["occurred_at"]
            items.append(Item(line(obj), "conflict", original.household))
            continue
        else:
            items.append(Item(draw(st.sampled_from(INVALID_LINES)), "invalid"))
            continue
        items.append(Item(text, "valid", hh, at))
        if type_ in RULES_OF:
            triggers.append((type_, hh, eid))
    return Stream(tuple(items))


def one_pass(lines: list[str], as_of: int) -> tuple[Replay, list[dict]]:
    rp = Replay(engine())
    records = rp.feed_all(lines)
    records += rp.finish(as_of)
    return rp, records


def restart(states: dict[str, HouseholdState]) -> dict[str, HouseholdState]:
    return {hh: HouseholdState.from_bytes(state.to_bytes()) for hh, state in states.items()}


def by_household(records: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for record in records:
        out.setdefault(record["household_id"], []).append(record)
    return out


# -- (a) restarts ----------------------------------------------------------------------


@SETTINGS
@given(stream=streams(), data=st.data())
def test_restarting_between_chunks_of_any_size_gives_the_same_records(stream, data):
    lines = stream.lines
    cuts = sorted(data.draw(st.sets(st.integers(0, len(lines)), max_size=8), label="cuts"))
    _, expected = one_pass(lines, stream.as_of)

    states: dict[str, HouseholdState] = {}
    records: list[dict] = []
    for start, end in zip([0, *cuts], [*cuts, len(lines)], strict=True):
        rp = Replay(engine(), states=restart(states))
        records += rp.feed_all(lines[start:end])
        states = dict(rp.states)
    records += Replay(engine(), states=restart(states)).finish(stream.as_of)
    assert records == expected


@SETTINGS
@given(stream=streams())
def test_a_serialized_state_round_trips_byte_for_byte(stream):
    rp, _ = one_pass(stream.lines, stream.as_of)
    for state in rp.states.values():
        blob = state.to_bytes()
        assert HouseholdState.from_bytes(blob).to_bytes() == blob


# -- (b) duplicates ----------------------------------------------------------------------


def with_redeliveries(stream: Stream, picks: list[tuple[int, int, bool]]) -> list[Item]:
    """Insert a copy of item ``src`` somewhere after it (optionally re-stamped by a gateway)."""
    items = list(stream.items)
    for src_seed, gap_seed, restamp in picks:
        src = src_seed % len(items)
        where = src + 1 + gap_seed % (len(items) - src)
        original = items[src]
        text = original.line
        if restamp and original.tag != "invalid":
            obj = json.loads(text)
            obj["recorded_at"] = "2026-07-01T00:00:00+08:00"
            text = line(obj)
        tag = "duplicate" if original.tag in ("valid", "duplicate") else "rejected-copy"
        items.insert(where, Item(text, tag, original.household, original.occurred))
    return items


redeliveries = st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 10_000), st.booleans()), max_size=10
)


@SETTINGS
@given(stream=streams(), picks=redeliveries)
def test_exact_redeliveries_anywhere_change_no_record(stream, picks):
    _, expected = one_pass(stream.lines, stream.as_of)
    noisy = [item.line for item in with_redeliveries(stream, picks)]
    _, records = one_pass(noisy, stream.as_of)
    assert records == expected


# -- (c) partitioning ----------------------------------------------------------------------


@SETTINGS
@given(stream=streams())
def test_each_household_alone_gives_the_same_records_as_all_together(stream):
    _, together = one_pass(stream.lines, stream.as_of)
    expected = by_household(together)
    for hh in HOUSEHOLDS:
        own = [item.line for item in stream.items if item.household == hh]
        _, alone = one_pass(own, stream.as_of)
        assert alone == expected.get(hh, [])


@SETTINGS
@given(stream=streams(), data=st.data())
def test_interleaving_households_differently_gives_the_same_records_per_household(stream, data):
    # Keep each household's order, shuffle how households interleave (another partitioning).
    queues = {hh: [i.line for i in stream.items if i.household == hh] for hh in HOUSEHOLDS}
    order = data.draw(st.permutations([hh for hh in HOUSEHOLDS for _ in queues[hh]]))
    interleaved = [queues[hh].pop(0) for hh in order]
    _, expected = one_pass([i.line for i in stream.items if i.household], stream.as_of)
    _, records = one_pass(interleaved, stream.as_of)
    assert by_household(records) == by_household(expected)


# -- (d) counts ---------------------------------------------------------------------------


@SETTINGS
@given(stream=streams(), picks=redeliveries)
def test_counts_reconcile_received_processed_duplicates_rejected(stream, picks):
    items = with_redeliveries(stream, picks)
    rp, _ = one_pass([item.line for item in items], stream.as_of)
    tags = [item.tag for item in items]
    counts = rp.counts
    assert counts.received == len(items)
    assert counts.received == counts.processed + counts.duplicates + counts.rejected
    assert counts.processed == tags.count("valid")
    assert counts.duplicates == tags.count("duplicate")
    assert counts.rejected == (
        tags.count("invalid") + tags.count("conflict") + tags.count("rejected-copy")
    )


# -- the generator is worth its salt -----------------------------------------------------


def test_the_generator_reaches_escalations_acknowledgements_and_resolutions():
    def rich(stream: Stream) -> bool:
        _, records = one_pass(stream.lines, stream.as_of)
        kinds = {r["type"] for r in records}
        return {"warning.escalated", "warning.acknowledged", "warning.resolved"} <= kinds

    quick = settings(
        derandomize=True, database=None, max_examples=2_000, phases=[Phase.generate]
    )  # the first hit will do: no shrinking
    example = find(streams(), rich, settings=quick)
    assert rich(example)
