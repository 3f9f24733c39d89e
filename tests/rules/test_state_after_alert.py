"""Household state after an alert: resolved warnings (what a reopening needs), the last
risk and reopen count of a warning, referrals and standing consent.

Stored states outlive code versions (SQLite ``household_state``, the Kafka changelog): a
state stored before these existed loads, and re-encodes to the very same bytes while
nothing new is in it; a state with them survives storing and loading unchanged, so a
runtime that reloads states between batches computes what one pass computes.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.replay import Replay
from rules.state import HouseholdState, OpenWarning, Referral, ResolvedWarning
from tests.helpers import DAY, T0, engine, of_type, replay, resolve, visit, wid
from tests.rules.after_alert import after_alert_story, consent, reopen, withdraw
from tests.rules.households import v2_story

#: Written by the code before resolved warnings, risks, referrals and consent were kept
#: (``v2_story`` household h-v2-a: an owner, registration flags, a cadence, an open and a
#: closed warning; and one with only a closed warning).
STORED_BEFORE = {
    "v2 household": (
        b'{"s":{"94703861-d816-576f-866d-a853ac8e2784":"3f61cf5e62717859",'
        b'"448adb57-451f-5039-ae63-0a3510db8555":"d4571545c5271170",'
        b'"3e458895-9b1f-5591-95ea-41a1b2a5c565":"6302ab12c947d143",'
        b'"61efbee0-bde3-57f4-b3ae-a9fd30065f50":"5a1b490226fb54e0",'
        b'"fd039617-00f9-5c80-85b3-8c03b64e4cbc":"168e9a021bedb22a",'
        b'"c6f93430-361e-54bd-89c3-f6e3b5d510ba":"f9522be338c706bf"},'
        b'"t":{"petition":[1776240000000000]},"f":[],"o":[["w-04030b7009f70754",'
        b'"violence-injury","red","230103002004",3,false,1773388800000000]],'
        b'"c":["w-4e18a983687bc9ac"],"d":[[1777190400000000,8,"esc",["w-4e18a983687bc9ac"]],'
        b'[1779264000000000,9,"cad",["screening-overdue"]]],"q":9,"w":"230103002004",'
        b'"r":["key_household"],"k":{"screening-overdue":[1776672000000000,'
        b'"c6f93430-361e-54bd-89c3-f6e3b5d510ba","230103002004",1779264000000000]}}'
    ),
    "resolved warning": (
        b'{"s":{"f13e0f7e-ef8f-518e-a352-cf98f788fe72":"5be7a27604fa2fa1",'
        b'"a8378f03-1821-536f-a964-574e4a15c185":"2b591a49512f2a26",'
        b'"0793b0da-4a7f-5413-891e-d2625c7f50a1":"e2631d2ba9193cbd"},"t":{},"f":[],"o":[],'
        b'"c":["w-d0bf69dae0e6822c"],"d":[[1772438400000000,1,"esc",["w-d0bf69dae0e6822c"]]],'
        b'"q":1,"w":"230102001001"}'
    ),
}
STORY = [*v2_story(T0), *after_alert_story(T0)]
AS_OF = T0 + 400 * DAY


@pytest.mark.parametrize("blob", STORED_BEFORE.values(), ids=STORED_BEFORE.keys())
def test_a_state_stored_before_loads_and_reencodes_to_the_same_bytes(blob):
    assert HouseholdState.from_bytes(blob).to_bytes() == blob


def test_a_warning_closed_in_a_state_stored_before_cannot_be_reopened_and_says_why():
    state = HouseholdState.from_bytes(STORED_BEFORE["resolved warning"])
    rp = Replay(engine(), {"h-old": state})
    rp.feed_all([reopen("h-old", "w-d0bf69dae0e6822c", T0 + DAY)])
    assert rp.counts.notice_reasons == {
        "warning.reopened: resolved before reopening was kept; nothing changed": 1}
    assert state.to_bytes().startswith(b'{"s":{') and b'"x"' not in state.to_bytes()


def test_an_open_warning_row_grows_only_by_what_it_holds():
    base: list = ["w-1", "r", "red", "230102001001", 0, False, 5]
    assert OpenWarning.from_list(base).to_list() == base
    assert OpenWarning.from_list([*base, "li"]).to_list() == [*base, "li"]
    assessed = OpenWarning("w-1", "r", "red", "230102001001", 0, False, 5, risk="high")
    assert assessed.to_list() == [*base, None, "high"]
    reopened = OpenWarning("w-1", "r", "red", "230102001001", 0, False, 5, reopened=2)
    assert OpenWarning.from_list(reopened.to_list()) == reopened
    assert reopened.to_list() == [*base, None, None, 2]


def test_a_state_with_everything_after_an_alert_survives_storing():
    state = HouseholdState(owner="230102001001")
    state.resolved["w-1"] = ResolvedWarning("violence-injury", "red", 1, 2, "li", "high", 1)
    state.closed.add("w-1")
    state.referrals["r-1"] = Referral("0a5c1f0e-6a2d-5a51-9c5c-7d6b3a1e0f11", "police", "sent")
    state.consent.update({"shelter", "police"})
    blob = state.to_bytes()
    again = HouseholdState.from_bytes(blob)
    assert again.to_bytes() == blob
    assert (again.resolved, again.referrals, again.consent) == (
        state.resolved, state.referrals, {"police", "shelter"})
    assert set(orjson.loads(blob)) >= {"x", "y", "g"}


def test_a_resolution_keeps_what_a_reopening_needs():
    injury = visit("h1", T0, ["injury_observed"])
    w = wid("violence-injury", "h1", injury)
    rp, _ = replay([injury, resolve("h1", w, T0 + DAY)])
    assert rp.states["h1"].resolved[w] == ResolvedWarning(
        "violence-injury", "red", T0, T0 + DAY, None, None, 0)
    rp, records = replay([injury, resolve("h1", w, T0 + DAY), reopen("h1", w, T0 + 2 * DAY)])
    assert w not in rp.states["h1"].resolved and w not in rp.states["h1"].closed
    assert len(of_type(records, "warning.reopened")) == 1


def test_a_withdrawn_last_consent_leaves_no_trace_in_the_bytes():
    rp, _ = replay([consent("h1", T0), withdraw("h1", T0 + DAY)])
    assert "g" not in orjson.loads(rp.states["h1"].to_bytes())


def one_pass() -> list[dict]:
    rp = Replay(engine())
    return rp.feed_all(STORY) + rp.finish(AS_OF)


ONE_PASS = one_pass()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STORY) - 1), max_size=4, unique=True))
def test_storing_and_reloading_every_state_between_batches_changes_no_record(cuts):
    rp, records, start = Replay(engine()), [], 0
    for cut in [*sorted(cuts), len(STORY)]:
        records += rp.feed_all(STORY[start:cut])
        for household_id, state in list(rp.states.items()):
            rp.states[household_id] = HouseholdState.from_bytes(state.to_bytes())
        start = cut
    assert records + rp.finish(AS_OF) == ONE_PASS
