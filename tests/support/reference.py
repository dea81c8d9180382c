"""The reference data beside the checkout: `../shared` (Elastic's rules, the CloudTrail
integration's pipeline outputs and raw logs), read by the tests that compare with the real thing.

A clone outside this workspace has no `../shared`. The tests marked `reference_data` then skip,
all from one line of this module, so pytest's summary (`-ra`) folds them into one line naming the
folder and counting them; with `CI` set (`CI=true`, as CI services set it) they fail instead:
CI must run them.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared"


class Verdict(Enum):
    """What becomes of a test that needs the reference data."""

    RUN = "run"
    SKIP = "skip"
    FAIL = "fail"


def is_ci(value: str | None) -> bool:
    """Whether a `CI` variable's value means "this is CI" (`true`, `1`, `yes`, any other word)."""
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def verdict(present: bool, ci: str | None) -> Verdict:
    """Run when the data is there; else skip, or fail under CI."""
    if present:
        return Verdict.RUN
    return Verdict.FAIL if is_ci(ci) else Verdict.SKIP


def present() -> bool:
    return REFERENCE.is_dir()


def missing_reason() -> str:
    return f"../shared (reference data) not found at {REFERENCE}"


def require() -> None:
    """Skip (or under CI fail) the running test when the reference data is missing."""
    decided = verdict(present(), os.environ.get("CI"))
    if decided is Verdict.SKIP:
        pytest.skip(missing_reason())
    if decided is Verdict.FAIL:
        pytest.fail(f"{missing_reason()} (CI is set: the tests that need it fail)", pytrace=False)
