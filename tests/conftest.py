"""What every test gets (see docs/architecture.md, "Tests"); the Elasticsearch fixtures are in
tests/integration/conftest.py.

- `DETECTOR_*` variables of the developer's shell (other than `DETECTOR_TEST_*`) are removed at
  start-up so they cannot leak into the settings the tests build;
- tests marked `reference_data` skip when `../shared` is missing, or fail under CI
  (`tests.support.reference`);
- Hypothesis checks properties, not draw speed.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from detector.settings import ENV_PREFIX
from tests.support import reference

# Kept importable from here for test files written before the fixtures moved.
from tests.support.es_node import EsNode

__all__ = ["EsNode"]

# Property tests check what is generated, not how fast: on a loaded 2-core CI machine one draw
# took 6.6 s once, failing Hypothesis' speed health check and deadline, not the property.
settings.register_profile(
    "loaded-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("loaded-machine")


def pytest_configure(config: pytest.Config) -> None:
    for name in [key for key in os.environ if key.startswith(ENV_PREFIX)]:
        if not name.startswith("DETECTOR_TEST_"):
            del os.environ[name]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # First, so that it also decides a parametrization left empty by the missing data (which
    # pytest would skip as "got empty parameter set", even under CI).
    if item.get_closest_marker("reference_data"):
        reference.require()
