"""The event ids a household's rule state has seen, with their fingerprints: exact and compact.

Duplicate detection is a per-household matter (DESIGN, "Duplicates"): the engine asks
whether this household has seen this ``event_id`` and with which content fingerprint.
Every id stays forever, so the set is most of a stored state. Held as a JSON object
of text it costs ~58 bytes per event stored and ~200 in memory; here an id that is a
canonical UUID (every id the codec accepts) with a 16-hex-digit fingerprint (every
fingerprint it computes) is one 24-byte record in one byte string: the 16 bytes of
the UUID, then the 8 of the fingerprint. Anything else (ids written by hand in a
test, a state stored before this format) stays in a plain ``dict``, so the mapping is
exact for every id and fingerprint.

A state with no records yet (a new household, every state of a replay, which never
stores them) keeps the ids it sees in a plain dict and packs them when it is stored
(``other``/``packed``): a dict look-up per event instead of a conversion to bytes and
a search. A state that has records packs each new id as it comes, as before. Either
way the records are in the order the ids were seen, so the stored bytes are the same.

Stored form (``rules.state``): the dict under ``"s"`` as before, the records under
``"z"`` as standard base64, only once there is one. A state stored before ``"z"``
existed loads with its ids in the dict and re-encodes to the very same bytes; the
ids it sees afterwards go to the records.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator

_ID_BYTES = 16
RECORD_BYTES = 24


def _packed_id(event_id: str) -> bytes | None:
    """The 16 bytes of a canonical (lower-case, hyphenated) UUID; None for anything else.

    The round trip (``raw.hex()`` equals the digits given) rejects upper case and the
    whitespace ``fromhex`` would skip, so two different ids never share a record.
    """
    if (len(event_id) == 36 and event_id[8] == "-" and event_id[13] == "-"
            and event_id[18] == "-" and event_id[23] == "-"):
        digits = event_id.replace("-", "")
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            return None
        if raw.hex() == digits:
            return raw
    return None


def _packed_fingerprint(fingerprint: str) -> bytes | None:
    """The 8 bytes of a fingerprint of 16 lower-case hex digits; None for anything else."""
    if len(fingerprint) != 16:
        return None
    try:
        raw = bytes.fromhex(fingerprint)
    except ValueError:
        return None
    return raw if raw.hex() == fingerprint else None


def _unpacked_id(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class SeenIds:
    """``event_id`` → fingerprint (hex), as a mapping; records packed where they can be."""

    __slots__ = ("_fresh", "_other", "_records")

    def __init__(self, other: dict[str, str] | None = None, records: bytes = b"") -> None:
        if len(records) % RECORD_BYTES:
            raise ValueError(f"seen-id records: {len(records)} bytes is not a whole record")
        #: ids that are not canonical UUIDs, or whose fingerprint is not 16 hex digits
        self._other: dict[str, str] = {} if other is None else other
        self._records = bytearray(records)
        #: ids seen while there were no records, in the order seen; packed by ``_settle``
        #: (so never entries here and records at once)
        self._fresh: dict[str, str] = {}

    # -- the stored form -------------------------------------------------------------------

    @classmethod
    def stored(cls, other: dict[str, str], packed: str | None) -> SeenIds:
        """From the stored ``"s"`` object and ``"z"`` text (None: none stored)."""
        if not packed:
            return cls(other)
        try:
            records = binascii.a2b_base64(packed, strict_mode=True)
        except binascii.Error as exc:
            raise ValueError(f"seen-id records are not base64: {exc}") from None
        return cls(other, records)

    @property
    def other(self) -> dict[str, str]:
        """What is stored under ``"s"``: the ids not held as records."""
        self._settle()
        return self._other

    def packed(self) -> str | None:
        """What is stored under ``"z"`` (None: no record yet)."""
        self._settle()
        if not self._records:
            return None
        return binascii.b2a_base64(self._records, newline=False).decode("ascii")

    def _settle(self) -> None:
        """Pack the ids seen while there were no records (in the dict, those that do not)."""
        if not self._fresh:
            return
        for event_id, fingerprint in self._fresh.items():
            self._append(event_id, _packed_id(event_id), fingerprint)
        self._fresh.clear()

    def _append(self, event_id: str, raw: bytes | None, fingerprint: str) -> None:
        """Hold a new id: as a record when it packs (``raw``: its 16 bytes), else in the dict."""
        packed = None if raw is None else _packed_fingerprint(fingerprint)
        if raw is not None and packed is not None:
            self._records += raw + packed
        else:
            self._other[event_id] = fingerprint

    # -- the mapping -----------------------------------------------------------------------

    def _find(self, raw: bytes) -> int:
        """The offset of the record of this id, or -1 (only offsets on a record boundary)."""
        records = self._records
        start = records.find(raw)
        while start != -1 and start % RECORD_BYTES:
            start = records.find(raw, start + 1)
        return start

    def _held(self, event_id: str, raw: bytes | None) -> str | None:
        """The fingerprint among the records (``raw``: the id packed) and the dict."""
        if raw is not None and self._records:
            at = self._find(raw)
            if at != -1:
                return self._records[at + _ID_BYTES : at + RECORD_BYTES].hex()
        return self._other.get(event_id)

    def get(self, event_id: str, default: str | None = None) -> str | None:
        known = self._fresh.get(event_id)
        if known is None:
            known = self._held(event_id, _packed_id(event_id) if self._records else None)
        return default if known is None else known

    def add_if_new(self, event_id: str, fingerprint: str) -> str | None:
        """The fingerprint already seen for ``event_id``; else record this one and say None.

        ``get`` then ``self[event_id] = fingerprint``: the engine's question for every
        event. Without records yet, it is answered from the dicts alone.
        """
        if self._records:  # then nothing is fresh: pack the id once, search, append
            raw = _packed_id(event_id)
            known = self._held(event_id, raw)
            if known is None:
                self._append(event_id, raw, fingerprint)
            return known
        known = self._fresh.get(event_id)
        if known is None and self._other:
            known = self._other.get(event_id)
        if known is None:
            self._fresh[event_id] = fingerprint
        return known

    def __getitem__(self, event_id: str) -> str:
        found = self.get(event_id)
        if found is None:
            raise KeyError(event_id)
        return found

    def __setitem__(self, event_id: str, fingerprint: str) -> None:
        self._settle()
        raw = _packed_id(event_id)
        packed = None if raw is None else _packed_fingerprint(fingerprint)
        at = self._find(raw) if raw is not None and self._records else -1
        if packed is None or event_id in self._other:
            # not packable, or stored in the older form: the id lives in the dict only
            if at != -1:
                del self._records[at : at + RECORD_BYTES]
            self._other[event_id] = fingerprint
            return
        assert raw is not None
        if at == -1:
            self._records += raw + packed
        else:
            self._records[at : at + RECORD_BYTES] = raw + packed

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and self.get(event_id) is not None

    def __len__(self) -> int:
        return len(self._other) + len(self._fresh) + len(self._records) // RECORD_BYTES

    def __iter__(self) -> Iterator[str]:
        yield from self._other
        yield from self._fresh
        records = bytes(self._records)
        for at in range(0, len(records), RECORD_BYTES):
            yield _unpacked_id(records[at : at + _ID_BYTES])

    def items(self) -> Iterator[tuple[str, str]]:
        for event_id in self:
            found = self.get(event_id)
            assert found is not None
            yield event_id, found

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SeenIds):
            return dict(self.items()) == dict(other.items())
        if isinstance(other, dict):
            return dict(self.items()) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"SeenIds({dict(self.items())!r})"
