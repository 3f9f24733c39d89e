"""Pseudonymous household keys for the warehouse.

Analysts work on fact tables that must never name a household, yet cadres'
ledgers must show the household_id. The warehouse therefore stores a keyed
hash (HMAC-SHA256 under a deployment secret, first 16 hex digits = 64 bits)
in every fact table and keeps the key → household_id mapping in a separate
``household_directory`` table. The HMAC is not reversible without the secret,
so deleting a directory row erases the household from every ledger view
(crypto-shredding): its facts and counts stay, its identity is gone.

The secret must stay the same across rebuilds, otherwise every key changes.

One secret per deployment (``deployment_secret``): both runtimes read the same
setting, so the same household has the same analytics key in the warehouse of
either (an analyst joining an embedded pilot's warehouse with the Kafka
deployment's sees one household, not two). Without the setting each runtime
keeps the secret it always had (embedded: in its home's log; Kafka workers:
``HOME/pseudonym.key``), so existing warehouses keep their keys.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from events.errors import JiaheError

KEY_HEX_DIGITS = 16
ERASED_PREFIX = "erased:"
#: The deployment's secret itself (its UTF-8 bytes are the HMAC key).
SECRET_ENV = "JIAHE_PSEUDONYM_SECRET"
#: A file holding it (its text, surrounding whitespace stripped): for secret stores
#: that mount files (Docker/Kubernetes secrets) rather than set variables.
SECRET_FILE_ENV = "JIAHE_PSEUDONYM_SECRET_FILE"


class PseudonymSecretError(JiaheError, ValueError):
    """A pseudonym secret setting that names no usable secret."""


def deployment_secret(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The deployment's pseudonym secret, or None when none is set.

    ``$JIAHE_PSEUDONYM_SECRET`` (its text), else the file ``$JIAHE_PSEUDONYM_SECRET_FILE``
    names (its text, stripped). A file named but missing or empty is an error, not a
    fallback: a fallback would write the warehouse under another secret, silently.
    """
    env = os.environ if environ is None else environ
    value = env.get(SECRET_ENV)
    if value:
        return value.encode("utf-8")
    path = env.get(SECRET_FILE_ENV)
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise PseudonymSecretError(f"${SECRET_FILE_ENV}={path}: {exc.strerror}") from exc
    if not text:
        raise PseudonymSecretError(f"${SECRET_FILE_ENV}={path}: the file is empty")
    return text.encode("utf-8")


def household_key(secret: bytes, household_id: str) -> str:
    """First 16 hex digits of HMAC-SHA256(secret, household_id)."""
    digest = hmac.new(secret, household_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:KEY_HEX_DIGITS]


def erased_label(key: str) -> str:
    """What a ledger shows instead of a household_id whose directory row is gone."""
    return ERASED_PREFIX + key


class Pseudonymizer:
    """``household_key`` bound to one secret, memoised (hot path of every insert).

    A plain dict (cleared when it reaches ``cache_size``) rather than
    ``lru_cache``: a hit costs one dict lookup, which matters at 10⁵ rows/s.
    """

    def __init__(self, secret: bytes, cache_size: int = 1 << 18) -> None:
        if not isinstance(secret, bytes | bytearray) or not secret:
            raise ValueError("pseudonym secret must be non-empty bytes")
        self._secret = bytes(secret)
        self._cache: dict[str, str] = {}
        self._cache_size = cache_size
        # HMAC (RFC 2104) with its two keyed SHA-256 states made once: a miss then costs
        # two state copies and two short hashes (~35% less than ``hmac.new``), which
        # matters when a city's households outnumber the cache.
        block = hashlib.sha256().block_size
        key = self._secret if len(self._secret) <= block else hashlib.sha256(self._secret).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, household_id: str) -> str:
        key = self._cache.get(household_id)
        if key is None:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            inner = self._inner.copy()
            inner.update(household_id.encode("utf-8"))
            outer = self._outer.copy()
            outer.update(inner.digest())
            key = self._cache[household_id] = outer.hexdigest()[:KEY_HEX_DIGITS]
        return key
