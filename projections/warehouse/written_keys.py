"""Which household keys this process has written a directory row for: a compact cache.

A warehouse writes a household's directory row once; re-sending it is harmless
(``household_directory`` is a ReplacingMergeTree read with FINAL) but costs rows to
insert and merge. With a set of key strings (~110 B each) a city of a million
households either outgrew its memory share or, bounded, forgot nearly every key
and re-sent a directory row with nearly every event.

Here each key (16 hex digits = 64 bits, ``privacy.pseudonym``) is one 8-byte slot of
a table of two-slot buckets indexed by its low bits. Exact in the one direction that
matters: a key reported as written holds its whole 64 bits in a slot, so it was
written; a key whose slot other keys took is reported as not written and only
re-sent. The table starts small and doubles while more than an eighth of its slots
are full, up to ``max_slots`` (a million households: 4M slots, 32 MB, ~3% re-sent).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

_KEY_HEX_DIGITS = 16
_FIRST_SLOTS = 1 << 12


def _as_int(key: str) -> int | None:
    if len(key) != _KEY_HEX_DIGITS:
        return None
    try:
        return int(key, 16)
    except ValueError:
        return None


class WrittenKeys:
    """``key in written`` / ``written.add(key)`` / ``discard`` / ``clear``; see the module."""

    def __init__(self, max_slots: int) -> None:
        #: A power of two (the largest not above the requested bound, at least one bucket).
        self.max_slots = 1 << max(1, max_slots.bit_length() - 1)
        self._slots = self._empty(min(_FIRST_SLOTS, self.max_slots))
        self._filled = 0
        self._zero = False  # key 0 is the empty slot's value: remembered apart
        #: keys that are not 16 hex digits (not written by ``privacy.pseudonym``), if any
        self._other: set[str] = set()

    @staticmethod
    def _empty(slots: int) -> array[int]:
        return array("Q", bytes(8 * slots))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        value = _as_int(key)
        if value is None:
            return key in self._other
        if value == 0:
            return self._zero
        slots = self._slots
        at = value & (len(slots) - 2)
        return slots[at] == value or slots[at + 1] == value

    def add(self, key: str) -> None:
        value = _as_int(key)
        if value is None:
            if len(self._other) >= self.max_slots:
                self._other.clear()
            self._other.add(key)
            return
        if value == 0:
            self._zero = True
            return
        self._put(value)
        slots = self._slots
        if self._filled * 8 > len(slots) and len(slots) < self.max_slots:
            self._grow()

    def update(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.add(key)

    def _put(self, value: int) -> None:
        slots = self._slots
        at = value & (len(slots) - 2)  # the bucket's first slot
        first, second = slots[at], slots[at + 1]
        if first == value or second == value:
            return
        if first == 0 or second == 0:
            self._filled += 1
            slots[at if first == 0 else at + 1] = value
        else:  # a full bucket: the newer key takes the first slot, the older moves on
            slots[at], slots[at + 1] = value, first

    def _grow(self) -> None:
        old = self._slots
        self._slots = self._empty(min(len(old) * 2, self.max_slots))
        self._filled = 0
        for value in old:
            if value:
                self._put(value)

    def discard(self, key: str) -> None:
        value = _as_int(key)
        if value is None:
            self._other.discard(key)
        elif value == 0:
            self._zero = False
        else:
            slots = self._slots
            at = value & (len(slots) - 2)
            for slot in (at, at + 1):
                if slots[slot] == value:
                    slots[slot] = 0
                    self._filled -= 1

    def difference_update(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.discard(key)

    def clear(self) -> None:
        self._slots = self._empty(min(_FIRST_SLOTS, self.max_slots))
        self._filled = 0
        self._zero = False
        self._other.clear()

    @property
    def nbytes(self) -> int:
        """Bytes held by the table (the other keys apart)."""
        return self._slots.itemsize * len(self._slots)
