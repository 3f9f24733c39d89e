"""household_key: stable, secret-dependent, 16 hex digits."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.pseudonym import Pseudonymizer, erased_label, household_key


def test_key_is_the_first_16_hex_digits_of_hmac_sha256() -> None:
    want = hmac.new(b"k", "户-1".encode(), hashlib.sha256).hexdigest()[:16]
    assert household_key(b"k", "户-1") == want
    assert len(want) == 16 and int(want, 16) >= 0


def test_key_depends_on_the_secret_and_the_household() -> None:
    assert household_key(b"a", "H1") != household_key(b"b", "H1")
    assert household_key(b"a", "H1") != household_key(b"a", "H2")


def test_pseudonymizer_caches_the_same_answer() -> None:
    p = Pseudonymizer(b"a")
    assert p("H1") == p("H1") == household_key(b"a", "H1")


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        Pseudonymizer(b"")


def test_erased_label() -> None:
    assert erased_label("0123456789abcdef") == "erased:0123456789abcdef"


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.text(max_size=60))
def test_the_memoised_pseudonymizer_computes_exactly_household_key(
    secret: bytes, household_id: str
) -> None:
    """Its precomputed HMAC states give the very key ``household_key`` defines (any secret
    length: longer than a SHA-256 block, the secret is hashed first)."""
    assert Pseudonymizer(secret)(household_id) == household_key(secret, household_id)
