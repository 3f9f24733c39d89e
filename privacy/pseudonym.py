"""Pseudonymous household keys for the warehouse.

Analysts work on fact tables that must never name a household, yet cadres'
ledgers must show the household_id. The warehouse therefore stores a keyed
hash (HMAC-SHA256 under a deployment secret, first 16 hex digits = 64 bits)
in every fact table and keeps the key → household_id mapping in a separate
``household_directory`` table. The HMAC is not reversible without the secret,
so deleting a directory row erases the household from every ledger view
(crypto-shredding): its facts and counts stay, its identity is gone.

The secret must stay the same across rebuilds, otherwise every key changes.
"""

from __future__ import annotations

import hashlib
import hmac

KEY_HEX_DIGITS = 16
ERASED_PREFIX = "erased:"


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

    def __call__(self, household_id: str) -> str:
        key = self._cache.get(household_id)
        if key is None:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            key = self._cache[household_id] = household_key(self._secret, household_id)
        return key
