"""Envelope encryption of personal fields, with one data key per household.

The personal free-text fields of the catalog (``events.catalog.PERSONAL_FIELDS``)
never reach the log in clear. On append each one is replaced by an envelope::

    {"enc": "aesgcm", "kid": "<key id>", "nonce": "<b64>", "ct": "<b64>"}

sealed with AES-256-GCM under the household's data key; the associated data is
the event_id and the field name, so a ciphertext moved to another event or
field fails authentication. Everything else stays clear (the rules need it).

Data keys are random, created with a household's first sealed field, and kept
*wrapped* (AES-256-GCM under the master key) in the store — the embedded log's
``household_keys`` table. The master key is a file (``master.key``, mode 0600)
outside the log, so a copy of the log alone leaks no personal text.

Erasure (crypto-shredding) deletes the household's data key and records an
erasure marker: its sealed fields then read as ``[erased]`` everywhere, and a
later event of that household has its personal fields dropped on append (the
event itself is kept and processed, so warnings are still raised).

Nonces are random by default (the embedded log). A ``Keyring(..., synthetic_nonce=True)``
(the Kafka publisher) derives each nonce from the data key, the associated data and
the plaintext (HMAC-SHA256 under a subkey, truncated to 96 bits, as in SIV
constructions): the same event sealed twice gives the same bytes, so a consumer that
dedupes by content (the engine: same ``event_id`` and fingerprint = duplicate) still
recognises a re-send from another process. It leaks only that two ciphertexts of
the *same* event and field are equal (the event_id is in the associated data), and
two different plaintexts share a nonce with probability ~2^-96.

Reading never raises for one bad field: ``open_event`` returns the event with
the field read as ``[unreadable]`` plus a ``Problem`` naming the event and the
field (tampered or corrupted ciphertext, a malformed envelope, an unknown key).
A missing or wrong master key, on the other hand, is an operator error and
raises ``KeyringError``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import itertools
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from events.catalog import PERSONAL_FIELDS
from events.codec import unknown_fields
from events.errors import JiaheError

ALGORITHM = "aesgcm"
ERASED = "[erased]"
UNREADABLE = "[unreadable]"
MASTER_KEY_FILE = "master.key"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_WRAP_CONTEXT = b"jiahe/household-key/v1"
_FIELD_CONTEXT = b"jiahe/field/v1"
_NONCE_CONTEXT = b"jiahe/synthetic-nonce/v1"
_BLOB_CONTEXT = b"jiahe/blob/v1"
#: Names a top-level field in the associated data (``data`` fields go by their bare name).
ENVELOPE_PREFIX = "envelope."
#: ``"as"`` of an envelope whose plaintext is JSON (a field outside the catalog that is
#: not text); the associated data says so too, so the mark cannot be added or removed.
AS_JSON = "json"
_AS_JSON_AAD = b"\0as=json"


class KeyringError(JiaheError):
    """The master key is missing, unsafe or does not match the stored keys."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A personal field that could not be read (the event itself stays usable)."""

    event_id: str
    household_id: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"event {self.event_id} (household {self.household_id}), data.{self.field}: " \
               f"{self.reason}"


@dataclass(frozen=True, slots=True)
class StoredKey:
    household_id: str
    kid: str
    wrapped: bytes
    master_id: str


class KeyStore(Protocol):
    """Where wrapped data keys and erasure markers live (``SqliteLog`` implements it)."""

    def key_of_household(self, household_id: str) -> StoredKey | None: ...

    def key_by_kid(self, kid: str) -> StoredKey | None: ...

    def store_key(self, key: StoredKey) -> None: ...

    def key_count(self) -> int: ...

    def is_erased(self, household_id: str) -> bool: ...

    def erasure_generation(self) -> int: ...


def _holds_something(value: Any) -> bool:
    """Whether a field outside the catalog is worth sealing (not null, not an empty text)."""
    return value is not None and value != ""


def field_aad(event_id: str, field: str) -> bytes:
    return b"\0".join((_FIELD_CONTEXT, event_id.encode(), field.encode()))


def _wrap_aad(household_id: str, kid: str) -> bytes:
    return b"\0".join((_WRAP_CONTEXT, kid.encode(), household_id.encode()))


def blob_aad(household_id: str, purpose: str) -> bytes:
    """Associated data of a sealed whole input (a dead letter): bound to household and use."""
    return b"\0".join((_BLOB_CONTEXT, purpose.encode(), household_id.encode()))


class _DataKey:
    """One unwrapped household key: the AEAD, and the subkey that derives synthetic nonces.

    The subkey (an HMAC) is derived on first use: only a key ring with synthetic
    nonces needs it, and a key built for one event should not pay for it.
    """

    __slots__ = ("_key", "_nonce_key", "aead")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self.aead = AESGCM(key)
        self._nonce_key: bytes | None = None

    @property
    def nonce_key(self) -> bytes:
        if self._nonce_key is None:
            self._nonce_key = hmac.new(self._key, _NONCE_CONTEXT, hashlib.sha256).digest()
        return self._nonce_key

    def nonce(self, aad: bytes, plaintext: bytes) -> bytes:
        mac = hmac.new(self.nonce_key, aad, hashlib.sha256)
        mac.update(b"\0")
        mac.update(plaintext)
        return mac.digest()[:_NONCE_BYTES]


def is_envelope(value: Any) -> bool:
    return isinstance(value, dict) and value.get("enc") == ALGORITHM


def load_master_key(path: Path, create: bool) -> bytes:
    """Read ``master.key`` (32 random bytes, hex); create it once (0600) when allowed."""
    if not path.exists():
        if not create:
            raise KeyringError(
                f"{path} is missing but the log holds wrapped household keys; restore the "
                "master key from its backup (without it no personal field can be read)"
            )
        _create_master_key(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyringError(f"{path} is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise KeyringError(f"{path} is not a hex-encoded key") from exc
    if len(key) != _KEY_BYTES:
        raise KeyringError(f"{path} must hold {_KEY_BYTES} bytes, found {len(key)}")
    return key


def _create_master_key(path: Path) -> None:
    """Write a new key atomically; if another process won the race, keep theirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_bytes(_KEY_BYTES).hex() + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # never replace an existing key
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def master_id_of(master: bytes) -> str:
    """A public identifier of the master key (to detect a wrong ``master.key``)."""
    return hashlib.sha256(b"jiahe/master-id\0" + master).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Keyring:
    """Seals and opens personal fields; caches unwrapped keys for one process.

    Not thread-safe. Keys created inside a store transaction are *pending*
    until ``commit()``; ``rollback()`` forgets them (their rows were rolled
    back), so a failed batch never leaves data sealed under a lost key.

    Two caches, because sealing and opening differ in reach. Sealing (every
    append) asks for any household of the city, so it keeps the 32 key bytes
    of up to ``CACHE_LIMIT`` households (~180 B each: a million households in
    ~180 MB) and builds the cipher per event (~2 µs), where an unwrap costs a
    store lookup and a master-key decryption. Opening (pages, verify, exports)
    keeps up to ``OPENING_CACHE_LIMIT`` built ciphers by key id (~2.5 KB each).
    """

    #: Households whose key bytes are kept for sealing; past it the older half is dropped.
    CACHE_LIMIT = 2_000_000
    #: Built ciphers kept for opening; the cache is dropped whole when it reaches this size.
    OPENING_CACHE_LIMIT = 100_000

    def __init__(
        self, store: KeyStore, master_key_path: Path, *, synthetic_nonce: bool = False
    ) -> None:
        self.store = store
        self.master_key_path = master_key_path
        self.synthetic_nonce = synthetic_nonce
        self._master: AESGCM | None = None
        self._master_id = ""
        #: household_id → the key id (UTF-8) followed by the 32 key bytes, for sealing
        self._sealing: dict[str, bytes] = {}
        self._by_kid: dict[str, tuple[str, _DataKey]] = {}
        self._missing: set[str] = set()  # kids with no key (erased or never existed)
        self._pending: list[tuple[str, str]] = []  # (household_id, kid) created, not committed
        self._generation = -1

    # -- keys ---------------------------------------------------------------

    def _master_aead(self) -> AESGCM:
        if self._master is None:
            master = load_master_key(self.master_key_path, create=self.store.key_count() == 0)
            self._master, self._master_id = AESGCM(master), master_id_of(master)
        return self._master

    def _unwrap_bytes(self, stored: StoredKey) -> bytes:
        master = self._master_aead()
        if stored.master_id != self._master_id:
            raise KeyringError(
                f"{self.master_key_path} is not the master key these household keys were "
                f"wrapped with (expected id {stored.master_id}, found {self._master_id})"
            )
        nonce, body = stored.wrapped[:_NONCE_BYTES], stored.wrapped[_NONCE_BYTES:]
        try:
            return master.decrypt(nonce, body, _wrap_aad(stored.household_id, stored.kid))
        except InvalidTag as exc:
            raise KeyringError(f"wrapped key {stored.kid} failed authentication") from exc

    def _unwrap(self, stored: StoredKey) -> _DataKey:
        return _DataKey(self._unwrap_bytes(stored))

    def refresh(self) -> None:
        """Drop cached keys if any household was erased since (possibly by another process)."""
        generation = self.store.erasure_generation()
        if generation != self._generation:
            self._clear()
            self._generation = generation

    def _clear(self) -> None:
        self._sealing.clear()
        self._by_kid.clear()
        self._missing.clear()

    def _keep_for_sealing(self, household_id: str, kid: str, key: bytes) -> None:
        sealing = self._sealing
        if len(sealing) >= self.CACHE_LIMIT:
            # the older half (insertion order): amortised O(1), and the recent half stays
            for old in list(itertools.islice(sealing, len(sealing) // 2 or 1)):
                del sealing[old]
        sealing[household_id] = kid.encode() + key

    def _keep_for_opening(self, household_id: str, kid: str, key: _DataKey) -> None:
        if len(self._by_kid) >= self.OPENING_CACHE_LIMIT:
            self._by_kid.clear()
        self._by_kid[kid] = (household_id, key)

    def forget(self, household_id: str) -> None:
        """Drop one household's key from the caches (after erasing it)."""
        kids = [kid for kid, (owner, _) in self._by_kid.items() if owner == household_id]
        entry = self._sealing.pop(household_id, None)
        if entry is not None:
            kids.append(entry[:-_KEY_BYTES].decode())
        for kid in kids:
            self._by_kid.pop(kid, None)
            self._missing.add(kid)

    def _key_for_sealing(self, household_id: str) -> tuple[str, _DataKey] | None:
        """The household's key, created if it has none; None if the household was erased."""
        cached = self._sealing.get(household_id)
        if cached is not None:
            return cached[:-_KEY_BYTES].decode(), _DataKey(cached[-_KEY_BYTES:])
        stored = self.store.key_of_household(household_id)
        if stored is not None:
            kid, key = stored.kid, self._unwrap_bytes(stored)
        else:
            if self.store.is_erased(household_id):
                return None
            master = self._master_aead()
            kid = secrets.token_hex(8)
            key = AESGCM.generate_key(bit_length=256)
            nonce = secrets.token_bytes(_NONCE_BYTES)
            wrapped = nonce + master.encrypt(nonce, key, _wrap_aad(household_id, kid))
            self.store.store_key(StoredKey(household_id, kid, wrapped, self._master_id))
            # A standalone store shared by processes keeps the first key stored for a
            # household (a concurrent creator lost the race): seal under that one.
            winner = self.store.key_of_household(household_id)
            if winner is not None and winner.kid != kid:
                kid, key = winner.kid, self._unwrap_bytes(winner)
            else:
                self._pending.append((household_id, kid))
        self._keep_for_sealing(household_id, kid, key)
        return kid, _DataKey(key)

    def commit(self) -> None:
        self._pending.clear()

    def rollback(self) -> None:
        for household_id, kid in self._pending:
            self._sealing.pop(household_id, None)
            self._by_kid.pop(kid, None)
        self._pending.clear()

    # -- fields -------------------------------------------------------------

    def seal_event(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a validated envelope with its personal fields sealed (or dropped if erased).

        Fields outside the catalog (``events.codec.unknown_fields``) are sealed too, each
        under its own name: a text as it is, any other value as its JSON (marked
        ``"as": "json"``). Their names stay readable; ``open_event`` gives their values
        back exactly.
        """
        out = dict(body)
        names = PERSONAL_FIELDS.get(str(body.get("type")), ())
        raw_data = body.get("data")
        extra_top, extra_data = unknown_fields(body)
        data: Mapping[str, Any] = raw_data if isinstance(raw_data, Mapping) else {}
        # An empty text holds nothing personal: left as it is (and cheaper).
        present = [n for n in names if isinstance(data.get(n), str) and data[n]]
        present += [n for n in extra_data if _holds_something(data[n])]
        top = [n for n in extra_top if _holds_something(body[n])]
        if not present and not top:
            return out
        household_id, event_id = str(body["household_id"]), str(body["event_id"])
        key = self._key_for_sealing(household_id)
        if present:
            sealed = dict(data)
            for name in present:
                sealed[name] = self._seal_value(key, event_id, name, sealed[name])
            out["data"] = sealed
        for name in top:
            out[name] = self._seal_value(key, event_id, ENVELOPE_PREFIX + name, out[name])
        return out

    def _seal_value(
        self, key: tuple[str, _DataKey] | None, event_id: str, name: str, value: Any
    ) -> dict[str, str] | str:
        if key is None:
            return ERASED
        if isinstance(value, str):
            plaintext, aad = value.encode("utf-8"), field_aad(event_id, name)
        else:  # a number, list, object …: its JSON, marked so that it opens back as it was
            plaintext, aad = orjson.dumps(value), field_aad(event_id, name) + _AS_JSON_AAD
        nonce = self._nonce(key[1], aad, plaintext)
        ct = key[1].aead.encrypt(nonce, plaintext, aad)
        envelope = {"enc": ALGORITHM, "kid": key[0], "nonce": _b64(nonce), "ct": _b64(ct)}
        if not isinstance(value, str):
            envelope["as"] = AS_JSON
        return envelope

    def _nonce(self, key: _DataKey, aad: bytes, plaintext: bytes) -> bytes:
        if self.synthetic_nonce:
            return key.nonce(aad, plaintext)
        return secrets.token_bytes(_NONCE_BYTES)

    def seal_blob(self, household_id: str, data: bytes, purpose: str) -> dict[str, Any] | None:
        """A whole input (e.g. a dead letter's bytes) sealed under the household's key.

        None when the household is erased (the caller keeps ``[erased]`` instead).
        The envelope names the household so that a reader knows which key to ask for.
        """
        key = self._key_for_sealing(household_id)
        if key is None:
            return None
        aad = blob_aad(household_id, purpose)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return {"enc": ALGORITHM, "kid": key[0], "nonce": _b64(nonce),
                "ct": _b64(key[1].aead.encrypt(nonce, data, aad)),
                "household_id": household_id, "purpose": purpose}

    def open_blob(self, envelope: Mapping[str, Any]) -> bytes | None:
        """The bytes sealed by :meth:`seal_blob`; None if the household was erased.

        Raises ``KeyringError`` for a tampered or foreign envelope (it is not erasure).
        """
        household_id, purpose = envelope.get("household_id"), envelope.get("purpose")
        kid = envelope.get("kid")
        if not (isinstance(household_id, str) and isinstance(purpose, str)
                and isinstance(kid, str)):
            raise KeyringError("malformed sealed envelope")
        key = self._key_for_opening(kid)
        if key is None:
            if self.store.is_erased(household_id):
                return None
            raise KeyringError(f"unknown key id {kid!r} (tampered envelope or lost key)")
        if key[0] != household_id:
            raise KeyringError("sealed with another household's key (tampered envelope)")
        try:
            nonce = base64.b64decode(envelope["nonce"], validate=True)
            ct = base64.b64decode(envelope["ct"], validate=True)
            return key[1].aead.decrypt(nonce, ct, blob_aad(household_id, purpose))
        except (KeyError, TypeError, ValueError, binascii.Error, InvalidTag) as exc:
            raise KeyringError("sealed envelope failed authentication") from exc

    def _key_for_opening(self, kid: str) -> tuple[str, _DataKey] | None:
        cached = self._by_kid.get(kid)
        if cached is not None or kid in self._missing:
            return cached
        stored = self.store.key_by_kid(kid)
        if stored is None:
            self._missing.add(kid)
            return None
        entry = (stored.household_id, self._unwrap(stored))
        self._keep_for_opening(stored.household_id, kid, entry[1])
        return entry

    def open_event(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
        """The event with its sealed fields in clear, ``[erased]`` or ``[unreadable]``.

        Returns ``body`` itself (not a copy) when nothing is sealed.
        """
        raw_data = body.get("data")
        data: Mapping[str, Any] = raw_data if isinstance(raw_data, Mapping) else {}
        in_data = any(is_envelope(v) for v in data.values())
        top = [name for name, value in body.items() if name != "data" and is_envelope(value)]
        if not in_data and not top:
            return body, []
        event_id, household_id = str(body.get("event_id")), str(body.get("household_id"))
        problems: list[Problem] = []
        out = dict(body)
        if in_data:
            clear = dict(data)
            for name, value in data.items():
                if not is_envelope(value):
                    continue
                text, reason = self._open_field(value, household_id, event_id, name)
                clear[name] = text
                if reason:
                    problems.append(Problem(event_id, household_id, name, reason))
            out["data"] = clear
        for name in top:
            field = ENVELOPE_PREFIX + name
            out[name], reason = self._open_field(body[name], household_id, event_id, field)
            if reason:
                problems.append(Problem(event_id, household_id, field, reason))
        return out, problems

    def _open_field(
        self, envelope: Mapping[str, Any], household_id: str, event_id: str, name: str
    ) -> tuple[Any, str | None]:
        kid = envelope.get("kid")
        try:
            nonce = base64.b64decode(envelope["nonce"], validate=True)
            ct = base64.b64decode(envelope["ct"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            return UNREADABLE, "malformed envelope"
        if not isinstance(kid, str):
            return UNREADABLE, "malformed envelope"
        key = self._key_for_opening(kid)
        if key is None:
            if self.store.is_erased(household_id):
                return ERASED, None
            return UNREADABLE, f"unknown key id {kid!r} (tampered envelope or lost key)"
        if key[0] != household_id:
            return UNREADABLE, "sealed with another household's key (tampered envelope)"
        as_json = envelope.get("as") == AS_JSON  # bound into the associated data
        aad = field_aad(event_id, name) + (_AS_JSON_AAD if as_json else b"")
        try:
            plain = key[1].aead.decrypt(nonce, ct, aad)
            return (orjson.loads(plain) if as_json else plain.decode("utf-8")), None
        except (InvalidTag, ValueError):
            return UNREADABLE, "ciphertext failed authentication (tampered or corrupted)"
