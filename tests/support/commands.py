"""The detector as a real process (`python -m detector ...`) in the integration tests.

- `detector_env(node, **variables)`: the one environment every such process gets: this
  process's environment without any `DETECTOR_*` variable, `PYTHONPATH` at the checkout, the
  node's URL and credentials (`node_variables`), then `variables` (which win);
- `detector_command(cwd, args, **variables)`: one timed command with that environment (`Run`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.es_node import EsNode

REPO = Path(__file__).resolve().parents[2]


def node_variables(node: EsNode, **overrides: str) -> dict[str, str]:
    """`DETECTOR_ES_URL` and, on a secured node, its superuser's credentials; then `overrides`."""
    variables = {"DETECTOR_ES_URL": node.url}
    if node.username and node.password:
        variables["DETECTOR_ES_USERNAME"] = node.username
        variables["DETECTOR_ES_PASSWORD"] = node.password
    return {**variables, **overrides}


def detector_env(node: EsNode | None = None, /, **variables: str) -> dict[str, str]:
    """The environment of a `detector` process: none of the caller's `DETECTOR_*` variables
    (the tests' own `DETECTOR_TEST_*` included), only the node's and `variables`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DETECTOR_")}
    env["PYTHONPATH"] = str(REPO)
    if node is not None:
        env.update(node_variables(node))
    return {**env, **variables}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def detector_command(cwd: Path, args: list[str], **variables: str) -> Run:
    """`python -m detector ARGS...` with exactly these DETECTOR_* variables, timed."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "detector", *args],
        env=detector_env(**variables),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
