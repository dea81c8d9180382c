"""What `--help` tells a newcomer about each command."""

from __future__ import annotations

import argparse

import pytest

from detector.cli import build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


COMMANDS = _subparsers(build_parser())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_description(name: str) -> None:
    assert COMMANDS[name].description


def test_run_help_mentions_signals_catch_up_and_metrics() -> None:
    text = COMMANDS["run"].format_help()
    assert "SIGTERM" in text
    assert "catches up" in text
    assert "DETECTOR_METRICS_PORT" in text


def test_demo_help_says_what_it_writes() -> None:
    text = " ".join(COMMANDS["demo"].format_help().split())
    assert "Write made-up CloudTrail events" in text
    assert "DETECTOR_ALERTS_INDEX" in text


def test_setup_help_shows_the_kibana_url_default() -> None:
    assert "default: DETECTOR_KIBANA_URL" in " ".join(COMMANDS["setup"].format_help().split())
