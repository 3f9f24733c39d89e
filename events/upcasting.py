"""Versioned upcasting: old envelopes are rewritten to the current schema on read.

The log keeps what the field app sent; readers see one shape. An upcaster turns
version N of a type into version N + 1; a chain brings any old version up to
``CURRENT_VERSION``. Versions newer than the reader knows are refused (they may
carry meaning this reader cannot honour).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from events.catalog import CURRENT_VERSION
from events.errors import JiaheError

RawEvent = dict[str, Any]
Upcaster = Callable[[RawEvent], RawEvent]


class UpcastError(JiaheError, ValueError):
    """No path from the event's version to the current one."""


@dataclass
class UpcasterRegistry:
    """Upcasters by (type, from_version); current versions by type."""

    current: dict[str, int] = field(default_factory=lambda: dict(CURRENT_VERSION))
    steps: dict[tuple[str, int], Upcaster] = field(default_factory=dict)

    def register(self, event_type: str, from_version: int, step: Upcaster) -> None:
        """Add the step from ``from_version`` to ``from_version + 1``."""
        self.steps[(event_type, from_version)] = step
        self.current[event_type] = max(self.current.get(event_type, 1), from_version + 1)

    def upcast(self, raw: Mapping[str, Any]) -> RawEvent:
        """Return ``raw`` at the current version of its type (a new dict if changed)."""
        event_type = raw.get("type")
        version = raw.get("schema_version")
        target = self.current.get(event_type) if isinstance(event_type, str) else None
        if type(version) is int and version == target:
            return raw  # type: ignore[return-value]  # the common case: nothing to do, no copy
        if (
            target is None
            or not isinstance(version, int)
            or isinstance(version, bool)
            or version < 1
        ):
            return dict(raw)  # validation will name the real problem
        if version > target:
            raise UpcastError(
                f"schema_version {version} of {event_type} is newer than this reader ({target})"
            )
        out = dict(raw)
        assert isinstance(event_type, str)
        while version < target:
            step = self.steps.get((event_type, version))
            if step is None:
                raise UpcastError(f"no upcaster for {event_type} v{version}")
            out = step(dict(out))
            version += 1
            out["schema_version"] = version
        return out


DEFAULT_UPCASTERS = UpcasterRegistry()
