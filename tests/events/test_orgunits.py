"""Org-unit codes (DESIGN.md "Events"): levels, parents, chains, Harbin's 18 units."""

from __future__ import annotations

import pytest

from events.orgunits import (
    HARBIN_CITY,
    HARBIN_DISTRICTS,
    Level,
    OrgUnit,
    OrgUnitError,
    ancestor_at,
    chain,
    check_code,
    check_community,
    district_name,
    district_of,
    is_within,
    level_of,
    parent_of,
)

COMMUNITY, STREET, DISTRICT, CITY = (
    "230102001001",
    "230102001000",
    "230102000000",
    "230100000000",
)


@pytest.mark.parametrize(
    ("code", "level"),
    [
        (COMMUNITY, Level.COMMUNITY),
        (STREET, Level.STREET),
        (DISTRICT, Level.DISTRICT),
        (CITY, Level.CITY),
    ],
)
def test_the_design_examples_have_their_levels(code, level):
    assert level_of(code) is level


def test_levels_are_ordered_bottom_up_with_lowercase_labels():
    assert Level.COMMUNITY < Level.STREET < Level.DISTRICT < Level.CITY
    assert [lvl.label for lvl in Level] == ["community", "street", "district", "city"]
    assert Level.from_label("district") is Level.DISTRICT


def test_a_community_parent_is_its_street_first_9_digits_plus_000():
    assert parent_of(COMMUNITY) == STREET
    assert parent_of("230184105203") == "230184105000"


def test_a_street_parent_is_its_district_first_6_digits_plus_zeros():
    assert parent_of(STREET) == DISTRICT
    assert parent_of("230184105000") == "230184000000"


def test_a_district_parent_is_its_city_first_4_digits_plus_zeros():
    assert parent_of(DISTRICT) == CITY
    assert parent_of("230184000000") == HARBIN_CITY


def test_a_city_has_no_parent():
    assert parent_of(CITY) is None


def test_the_chain_of_a_community_climbs_to_the_city():
    assert chain(COMMUNITY) == [COMMUNITY, STREET, DISTRICT, CITY]
    assert chain(STREET) == [STREET, DISTRICT, CITY]
    assert chain(CITY) == [CITY]


def test_ancestor_at_each_level_is_the_handling_unit():
    assert [ancestor_at(COMMUNITY, lvl) for lvl in Level] == [COMMUNITY, STREET, DISTRICT, CITY]


def test_a_code_is_within_itself_and_its_ancestors_only():
    assert all(is_within(COMMUNITY, scope) for scope in (COMMUNITY, STREET, DISTRICT, CITY))
    assert not is_within(COMMUNITY, "230103000000")
    assert not is_within(COMMUNITY, "230102002000")
    assert not is_within(STREET, COMMUNITY)


def test_district_of_is_the_6_digit_prefix_plus_zeros():
    assert district_of(COMMUNITY) == DISTRICT
    assert district_of("230183100200") == "230183000000"


def test_harbin_has_exactly_the_18_county_level_units_of_the_design():
    assert HARBIN_CITY == "230100000000"
    assert HARBIN_DISTRICTS == {
        "230102": "道里区",
        "230103": "南岗区",
        "230104": "道外区",
        "230108": "平房区",
        "230109": "松北区",
        "230110": "香坊区",
        "230111": "呼兰区",
        "230112": "阿城区",
        "230113": "双城区",
        "230123": "依兰县",
        "230124": "方正县",
        "230125": "宾县",
        "230126": "巴彦县",
        "230127": "木兰县",
        "230128": "通河县",
        "230129": "延寿县",
        "230183": "尚志市",
        "230184": "五常市",
    }


@pytest.mark.parametrize("prefix", sorted(HARBIN_DISTRICTS))
def test_every_harbin_unit_is_a_district_whose_parent_is_harbin(prefix):
    code = prefix + "000000"
    assert level_of(code) is Level.DISTRICT
    assert parent_of(code) == HARBIN_CITY
    assert district_name(prefix + "001001") == HARBIN_DISTRICTS[prefix]


def test_a_district_outside_harbin_has_no_harbin_name():
    assert district_name("230202001001") is None


@pytest.mark.parametrize(
    "code",
    [
        "23010200100",
        "2301020010011",
        "23010200100a",
        "２３０１０２００１００１",
        "",
        "000000000000",
        "230000000000",
        "230102000001",
        "230100001001",
    ],
)
def test_invalid_codes_are_refused(code):
    with pytest.raises(OrgUnitError):
        check_code(code)


def test_only_community_codes_pass_the_community_check():
    assert check_community(COMMUNITY) == COMMUNITY
    for code in (STREET, DISTRICT, CITY):
        with pytest.raises(OrgUnitError):
            check_community(code)


def test_an_org_unit_object_knows_level_district_and_parent():
    unit = OrgUnit(COMMUNITY)
    assert unit.level is Level.COMMUNITY
    assert unit.district == DISTRICT
    assert unit.parent == OrgUnit(STREET)
    assert OrgUnit(CITY).parent is None
    with pytest.raises(OrgUnitError):
        OrgUnit("123")
