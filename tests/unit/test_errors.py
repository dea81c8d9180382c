"""The error tree: every error the detector raises is one line (or a few), never a huge value."""

from __future__ import annotations

from detector.errors import MAX_MESSAGE, RequestError, RuleError, shorten


def test_a_short_text_is_kept() -> None:
    assert shorten("short", 10) == "short"


def test_a_long_text_is_cut_with_a_marker() -> None:
    assert shorten("abcdefghij", 4) == "abcd... [6 more characters]"


def test_errors_never_carry_a_huge_message() -> None:
    error = RequestError(f"Elasticsearch rejected the request (400): {'v' * 40_000}", 400)
    assert len(str(error)) < MAX_MESSAGE + 50
    assert str(error).endswith("more characters]")
    assert error.status == 400


def test_rule_errors_keep_their_location_prefix() -> None:
    assert str(RuleError("bad", None)) == "bad"
