"""Composable index templates of the detector's own indices (alerts, execution log).

Pure: it builds request bodies and never talks to Elasticsearch (`detector.es.client` puts them).
Each index gets a template `<index>-template` for exactly that index and `<index>-*` (e.g. a
reindex target), with the settings and mappings shipped in `detector/mappings/*.json`.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

MANAGED_BY = "newterms-detector"
# Above the built-in templates (`logs`, `metrics`... use 100) so ours wins if they overlap;
# the name's length is added (see `template_priority`).
TEMPLATE_PRIORITY = 500


@cache
def _resource_text(resource: str) -> str:
    return resources.files("detector").joinpath(resource).read_text("utf-8")


def load_resource(resource: str) -> dict[str, Any]:
    """A fresh copy of a packaged JSON file, e.g. `mappings/alerts-template.json`."""
    body: dict[str, Any] = json.loads(_resource_text(resource))
    return body


def template_name(index: str) -> str:
    """`<index>-template`."""
    return f"{index}-template"


def template_priority(index: str) -> int:
    """Longer names get higher priorities, so `<index>-*` never ties with `<index>-prod`.

    Elasticsearch refuses two templates of one priority whose patterns overlap; the pattern of
    one index can only cover longer names, so priority by length keeps them apart and lets the
    more specific template win.
    """
    return TEMPLATE_PRIORITY + len(index.encode("utf-8"))


def index_template(index: str, resource: str) -> dict[str, Any]:
    """The composable template for exactly `index` and `<index>-*`, from a packaged JSON file
    of settings, mappings and `_meta`."""
    base = load_resource(resource)
    meta = base.pop("_meta", {})
    return {
        "index_patterns": [index, f"{index}-*"],
        "priority": template_priority(index),
        "template": base,
        "_meta": {**meta, "managed_by": MANAGED_BY},
    }
