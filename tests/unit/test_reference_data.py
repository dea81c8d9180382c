"""Tests that need the reference data (`../shared`) run where it is, skip on a fresh clone, and
fail under CI, where they must run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import reference
from tests.support.reference import Verdict, verdict


@pytest.mark.parametrize("ci", [None, "", "true", "false"])
def test_present_data_runs_with_or_without_ci(ci: str | None) -> None:
    assert verdict(present=True, ci=ci) is Verdict.RUN


@pytest.mark.parametrize("ci", [None, "", "0", "false", "FALSE", "no", "off"])
def test_missing_data_skips_outside_ci(ci: str | None) -> None:
    assert verdict(present=False, ci=ci) is Verdict.SKIP


@pytest.mark.parametrize("ci", ["true", "True", "1", "yes", "gitlab"])
def test_missing_data_fails_under_ci(ci: str) -> None:
    assert verdict(present=False, ci=ci) is Verdict.FAIL


def test_the_skip_names_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(reference, "REFERENCE", tmp_path / "shared")
    monkeypatch.delenv("CI", raising=False)
    expected = f"../shared (reference data) not found at {tmp_path / 'shared'}"
    with pytest.raises(pytest.skip.Exception, match=re.escape(expected)):
        reference.require()


def test_under_ci_the_test_fails_naming_the_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(reference, "REFERENCE", tmp_path / "shared")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=re.escape(str(tmp_path / "shared"))):
        reference.require()


def test_present_data_lets_the_test_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(reference, "REFERENCE", tmp_path)
    monkeypatch.setenv("CI", "true")
    reference.require()
