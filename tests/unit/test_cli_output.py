"""What the `detector` command writes when its reader goes away (`detector rules list | head -1`):
nothing more, and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from detector.cli import BROKEN_PIPE
from tests.support.commands import detector_env


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["rules", "list"], BROKEN_PIPE),
        (["kql", "a: b"], BROKEN_PIPE),
        (["--help"], 0),  # argparse ignores a failed write of its help itself
    ],
)
def test_a_reader_that_went_away_ends_the_command_quietly(
    command: list[str], code: int, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "detector", *command],
        cwd=tmp_path,  # no `.env`
        env=detector_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the command writes: its first write meets a closed pipe

    with process.stderr:
        err = process.stderr.read()
    process.wait(timeout=60)

    assert err == ""
    assert process.returncode == code
