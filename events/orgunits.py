"""Org-unit codes: the 12-digit national statistical division code.

2 province + 2 city + 2 county + 3 township + 3 village digits. Events happen
at community (村/社区) level; warnings climb community → street → district →
city (逐级上报), so every code knows its level and its parent chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from events.errors import JiaheError


class Level(IntEnum):
    """Handling levels, ordered bottom-up so ``Level.STREET > Level.COMMUNITY``."""

    COMMUNITY = 0
    STREET = 1
    DISTRICT = 2
    CITY = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Level:
        return cls[label.upper()]


class OrgUnitError(JiaheError, ValueError):
    """A code that is not a valid 12-digit org-unit code."""


HARBIN_CITY = "230100000000"

#: Harbin's 18 county-level units (DESIGN.md), code prefix → name.
HARBIN_DISTRICTS: dict[str, str] = {
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


def level_of(code: str) -> Level:
    """The level a code denotes, from which trailing digit groups are zero."""
    check_code(code)
    if code[4:] == "00000000":
        return Level.CITY
    if code[6:] == "000000":
        return Level.DISTRICT
    if code[9:] == "000":
        return Level.STREET
    return Level.COMMUNITY


def check_code(code: str) -> str:
    """Return the code if it is 12 ASCII digits with non-zero province and city parts."""
    if not isinstance(code, str) or len(code) != 12 or not code.isascii() or not code.isdigit():
        raise OrgUnitError(f"org unit must be 12 digits, got {code!r}")
    if code[:2] == "00" or code[2:4] == "00":
        raise OrgUnitError(f"org unit {code!r} has no province or city part")
    if code[6:9] == "000" and code[9:] != "000":
        raise OrgUnitError(f"org unit {code!r} names a village without a township")
    if code[4:6] == "00" and code[6:] != "000000":
        raise OrgUnitError(f"org unit {code!r} names a township without a county")
    return code


def check_community(code: str) -> str:
    """Events must name a community/village; anything higher is refused."""
    if level_of(code) is not Level.COMMUNITY:
        raise OrgUnitError(f"org unit {code!r} is not a community-level code")
    return code


def street_of(code: str) -> str:
    return code[:9] + "000"


def district_of(code: str) -> str:
    return code[:6] + "000000"


def city_of(code: str) -> str:
    return code[:4] + "00000000"


def ancestor_at(code: str, level: Level) -> str:
    """The unit that handles ``code`` at ``level`` (the code itself at its own level)."""
    if level is Level.COMMUNITY:
        return code
    if level is Level.STREET:
        return street_of(code)
    if level is Level.DISTRICT:
        return district_of(code)
    return city_of(code)


def parent_of(code: str) -> str | None:
    """The next unit up, or None for a city."""
    level = level_of(code)
    if level is Level.CITY:
        return None
    return ancestor_at(code, Level(level + 1))


def chain(code: str) -> list[str]:
    """The code and every ancestor up to the city, bottom-up."""
    out = [code]
    parent = parent_of(code)
    while parent is not None:
        out.append(parent)
        parent = parent_of(parent)
    return out


def is_within(code: str, scope: str) -> bool:
    """True when ``code`` is ``scope`` or lies under it (access scoping)."""
    return scope in chain(code)


def district_name(code: str) -> str | None:
    return HARBIN_DISTRICTS.get(code[:6])


@dataclass(frozen=True, slots=True)
class OrgUnit:
    """A parsed code, for callers that want names and levels together."""

    code: str

    def __post_init__(self) -> None:
        check_code(self.code)

    @property
    def level(self) -> Level:
        return level_of(self.code)

    @property
    def district(self) -> str:
        return district_of(self.code)

    @property
    def parent(self) -> OrgUnit | None:
        parent = parent_of(self.code)
        return OrgUnit(parent) if parent else None
