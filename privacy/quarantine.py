"""Quarantine sealing with public keys: dead letters written by a process that holds no key.

The Kafka worker refuses input (a message of ``jiahe.events`` that does not decode, a
batch it cannot decompress, an event the engine fails on) but holds no household key
and no master key: those stay on the API host (``privacy.keystore``). So the worker
seals what it dead-letters with the *public* half of the day's quarantine key pair:

* one X25519 key pair per UTC day; the private half is kept in the key store sealed
  under that day's quarantine data key (``privacy.dead_letters.quarantine_id``), so
  purging the day (``KafkaKeyring.purge_quarantine``) makes every letter of it
  unreadable, on the topic, its replicas and backups alike;
* the public halves are exported to a JSON file (``jiahe quarantine-keys``) that the
  worker is given (``--quarantine-keys``), re-read whenever it changes;
* a body is sealed ECIES-like: an ephemeral X25519 key, HKDF-SHA256 over the shared
  secret (salted with both public keys), AES-256-GCM with the day and the purpose as
  associated data (:func:`seal_quarantined`);
* with no public key for the day, the body is *withheld*: the letter keeps its SHA-256,
  its length and (in its headers) its reason, never the bytes (:func:`withheld`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from events.instants import now_micros
from privacy.crypto import KeyringError
from privacy.dead_letters import PURPOSE, stored_object

log = logging.getLogger(__name__)

#: ``enc`` of a body sealed with a day's quarantine public key.
ALGORITHM = "x25519-aesgcm"
#: What a worker with no public key for the day writes instead of the body.
WITHHELD = "quarantine sealing is not configured"
FILE_FORMAT = "jiahe-quarantine-public-keys/1"
DAY_US = 86_400_000_000
_INFO = b"jiahe/quarantine/v1"
_NONCE_BYTES = 12


def generate_pair() -> tuple[bytes, bytes]:
    """A new key pair: (private, public), 32 raw bytes each."""
    private = X25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def _aead(shared: bytes, ephemeral: bytes, recipient: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_INFO)
    return AESGCM(hkdf.derive(shared))


def _aad(day: int, purpose: str) -> bytes:
    return b"\0".join((_INFO, purpose.encode(), str(day).encode()))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def seal_quarantined(public: bytes, day: int, body: bytes, purpose: str = PURPOSE
                     ) -> dict[str, Any]:
    """``body`` sealed for the holder of the day's private key (the envelope names the day)."""
    recipient = X25519PublicKey.from_public_bytes(public)
    ephemeral = X25519PrivateKey.generate()
    epk = ephemeral.public_key().public_bytes_raw()
    nonce = secrets.token_bytes(_NONCE_BYTES)
    ct = _aead(ephemeral.exchange(recipient), epk, public).encrypt(nonce, body, _aad(day, purpose))
    return {"enc": ALGORITHM, "day": day, "epk": _b64(epk), "nonce": _b64(nonce),
            "ct": _b64(ct), "purpose": purpose}


def quarantine_envelope(stored: bytes) -> dict[str, Any] | None:
    """The quarantine envelope a stored body holds, or None (any other body)."""
    value = stored_object(stored)
    if (value is not None and value.get("enc") == ALGORITHM
            and isinstance(value.get("day"), int) and value.get("purpose") == PURPOSE):
        return value
    return None


def open_quarantined(private: bytes, envelope: Mapping[str, Any]) -> bytes:
    """The body of :func:`seal_quarantined`; ``KeyringError`` for a tampered envelope."""
    try:
        key = X25519PrivateKey.from_private_bytes(private)
        epk = base64.b64decode(envelope["epk"], validate=True)
        nonce = base64.b64decode(envelope["nonce"], validate=True)
        ct = base64.b64decode(envelope["ct"], validate=True)
        shared = key.exchange(X25519PublicKey.from_public_bytes(epk))
        aead = _aead(shared, epk, key.public_key().public_bytes_raw())
        return aead.decrypt(nonce, ct, _aad(int(envelope["day"]), str(envelope["purpose"])))
    except (KeyError, TypeError, ValueError, binascii.Error, InvalidTag) as exc:
        raise KeyringError("quarantined envelope failed authentication") from exc


def withheld(body: bytes) -> bytes:
    """What stands for a body no key can seal: its digest and length, never its bytes."""
    return orjson.dumps({"withheld": WITHHELD, "sha256": hashlib.sha256(body).hexdigest(),
                         "length": len(body)})


def write_public_keys(path: Path, keys: Mapping[int, bytes]) -> None:
    """Write the public keys by day atomically (a worker may be reading the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": FILE_FORMAT, "keys": {str(day): _b64(k) for day, k in sorted(keys.items())}}
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def read_public_keys(path: Path) -> dict[int, bytes]:
    """The public keys by day of a file written by :func:`write_public_keys`."""
    doc = orjson.loads(path.read_bytes())
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
        raise ValueError(f"{path} is not a {FILE_FORMAT} file")
    keys = {int(day): base64.b64decode(k, validate=True) for day, k in doc["keys"].items()}
    for day, key in keys.items():
        X25519PublicKey.from_public_bytes(key)  # refuses a key of the wrong size
        if day < 0:
            raise ValueError(f"{path}: day {day}")
    return keys


class QuarantineSealer:
    """The worker's side: seals dead-letter bodies with the day's public key from a file.

    The file is re-read when it changes (a refreshed export needs no restart). With no
    file, an unreadable one, or no key for the day, bodies are withheld, and that is
    logged once per cause rather than per letter.
    """

    def __init__(self, path: Path | None, clock: Callable[[], int] = now_micros) -> None:
        self.path = path
        self.clock = clock
        self._keys: dict[int, bytes] = {}
        self._seen: tuple[int, int] | None = None
        self._warned: set[str] = set()

    def _warn_once(self, cause: str) -> None:
        if cause not in self._warned:
            self._warned.add(cause)
            log.warning("dead letters are withheld (digest and length only): %s", cause)

    def _current_keys(self) -> dict[int, bytes]:
        if self.path is None:
            self._warn_once("no quarantine public key file was given (--quarantine-keys)")
            return {}
        try:
            stat = self.path.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
            if seen != self._seen:
                self._keys, self._seen = read_public_keys(self.path), seen
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
            self._warn_once(f"cannot read {self.path}: {type(exc).__name__}: {exc}")
            self._keys, self._seen = {}, None
        return self._keys

    def seal(self, body: bytes) -> tuple[bytes, str]:
        """The value to write and how it was made: ``quarantine`` or ``withheld``."""
        day = self.clock() // DAY_US
        public = self._current_keys().get(day)
        if public is None:
            if self._seen is not None:
                self._warn_once(f"{self.path} has no key for day {day}; export more days")
            return withheld(body), "withheld"
        return orjson.dumps(seal_quarantined(public, day, body)), "quarantine"
