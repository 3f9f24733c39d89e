"""Quarantine sealing with public keys (``privacy.quarantine``) and its keys in the key store.

A process without keys (the Kafka worker) seals a dead letter with the day's public key;
only the key store that holds the day's private key (the API host's) opens it, and
nobody once the day was purged.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from privacy.crypto import KeyringError
from privacy.keystore import KEYSTORE_FILE, kafka_keyring
from privacy.quarantine import (
    DAY_US,
    QuarantineSealer,
    generate_pair,
    open_quarantined,
    quarantine_envelope,
    seal_quarantined,
    withheld,
    write_public_keys,
)

BODY = '{"household_id": "王秀英", "notes": "电话 13800138000"}'.encode()
NOW = 20_000 * DAY_US + 3_600_000_000  # an hour into day 20000


def test_a_sealed_body_opens_with_the_private_key_only() -> None:
    private, public = generate_pair()
    envelope = seal_quarantined(public, 20_000, BODY)
    assert BODY not in orjson.dumps(envelope)
    assert quarantine_envelope(orjson.dumps(envelope)) == envelope
    assert open_quarantined(private, envelope) == BODY
    other, _ = generate_pair()
    with pytest.raises(KeyringError):
        open_quarantined(other, envelope)
    with pytest.raises(KeyringError):  # the day is bound to the ciphertext
        open_quarantined(private, {**envelope, "day": 20_001})
    assert seal_quarantined(public, 20_000, BODY) != envelope  # a fresh ephemeral key each


def test_the_key_store_keeps_the_private_keys_sealed_and_purges_them_with_their_day(
    tmp_path: Path,
) -> None:
    home = tmp_path / "api-home"
    keyring = kafka_keyring(home)
    try:
        keys = keyring.quarantine_public_keys(3, now_us=NOW)
        assert sorted(keys) == [20_000, 20_001, 20_002]
        assert keyring.quarantine_public_keys(3, now_us=NOW) == keys  # kept, not remade
        write_public_keys(tmp_path / "public.json", keys)
        sealer = QuarantineSealer(tmp_path / "public.json", clock=lambda: NOW)
        stored, how = sealer.seal(BODY)
        assert how == "quarantine" and BODY not in stored
        assert keyring.open_dead_letter(stored) == BODY
        private = keyring.quarantine_private(20_000)
        assert private is not None
        assert private not in (home / KEYSTORE_FILE).read_bytes()  # sealed at rest

        # thirty days later the day is purged: the letter can no longer be opened
        assert keyring.purge_quarantine(now_us=NOW + 31 * DAY_US, days=30) == 1
        assert keyring.quarantine_private(20_000) is None
        assert keyring.open_dead_letter(stored) is None
        assert keyring.quarantine_private(20_001) is not None  # later days are kept
    finally:
        keyring.close()


def test_without_a_key_for_the_day_the_body_is_withheld(tmp_path: Path) -> None:
    unconfigured = QuarantineSealer(None, clock=lambda: NOW)
    value, how = unconfigured.seal(BODY)
    assert (value, how) == (withheld(BODY), "withheld")
    assert BODY not in value and b"13800138000" not in value
    assert orjson.loads(value)["length"] == len(BODY)

    _, public = generate_pair()
    path = tmp_path / "public.json"
    write_public_keys(path, {19_999: public})  # yesterday's only
    sealer = QuarantineSealer(path, clock=lambda: NOW)
    assert sealer.seal(BODY)[1] == "withheld"
    write_public_keys(path, {20_000: public})  # a refreshed export is read without restart
    value, how = sealer.seal(BODY)
    assert how == "quarantine" and quarantine_envelope(value) is not None


def test_an_unreadable_key_file_withholds_rather_than_fails(tmp_path: Path) -> None:
    path = tmp_path / "public.json"
    path.write_text("not json")
    value, how = QuarantineSealer(path, clock=lambda: NOW).seal(BODY)
    assert how == "withheld" and BODY not in value
