"""One pseudonym secret per deployment (``privacy.pseudonym.deployment_secret``).

The setting is ``$JIAHE_PSEUDONYM_SECRET`` or a file named by
``$JIAHE_PSEUDONYM_SECRET_FILE``; without it each runtime keeps its home's secret.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.bootstrap import bootstrap_embedded
from privacy.pseudonym import (
    SECRET_ENV,
    SECRET_FILE_ENV,
    PseudonymSecretError,
    deployment_secret,
    household_key,
)
from streams.embedded.runtime import PSEUDONYM_SECRET
from streams.kafka.warehouse import pseudonym_secret


def test_the_variable_names_the_secret() -> None:
    assert deployment_secret({SECRET_ENV: "s3cret"}) == b"s3cret"


def test_a_file_names_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("  from-a-mounted-file\n")
    assert deployment_secret({SECRET_FILE_ENV: str(path)}) == b"from-a-mounted-file"
    assert deployment_secret({SECRET_ENV: "env-wins", SECRET_FILE_ENV: str(path)}) == b"env-wins"


def test_no_setting_is_no_deployment_secret() -> None:
    assert deployment_secret({}) is None
    assert deployment_secret({SECRET_ENV: ""}) is None


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_a_named_file_that_is_missing_or_empty_is_an_error_not_a_fallback(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PseudonymSecretError, match=SECRET_FILE_ENV):
        deployment_secret({SECRET_FILE_ENV: str(path)})


def test_both_runtimes_take_the_deployment_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "one-per-deployment")
    runtime = bootstrap_embedded(tmp_path / "embedded")
    try:
        assert runtime.pseudonym_secret() == b"one-per-deployment"
        assert runtime.log.secret(PSEUDONYM_SECRET) != b"one-per-deployment"
    finally:
        runtime.close()
    assert pseudonym_secret(tmp_path / "kafka-home") == b"one-per-deployment"
    assert not (tmp_path / "kafka-home" / "pseudonym.key").exists()


def test_without_the_setting_each_home_keeps_its_own_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.delenv(SECRET_FILE_ENV, raising=False)
    runtime = bootstrap_embedded(tmp_path / "embedded")
    try:
        own = runtime.log.secret(PSEUDONYM_SECRET)
        assert runtime.pseudonym_secret() == own
    finally:
        runtime.close()
    kafka = pseudonym_secret(tmp_path / "kafka-home")
    assert kafka == (tmp_path / "kafka-home" / "pseudonym.key").read_text().strip().encode()
    assert household_key(own, "hh-1") != household_key(kafka, "hh-1")
