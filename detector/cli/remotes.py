"""`detector check`'s remote clusters: each one the rules search (their `alias:pattern`s and
`DETECTOR_REMOTE_CLUSTERS`), connected or not, `skip_unavailable`, version."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from detector.errors import ElasticsearchError
from detector.query.clusters import remotes_named

if TYPE_CHECKING:
    from detector.es.client import Elastic


def check_remotes(elastic: Elastic, patterns: Sequence[str]) -> list[str]:
    """Print a line per remote cluster the patterns name; the errors (one not configured or
    not connected: every execution of its rules would fail)."""
    named = remotes_named(patterns)
    if not named:
        return []
    configured = elastic.remote_info()
    aliases = sorted({a for name in named for a in configured if fnmatch.fnmatchcase(a, name)})
    errors = [
        f"remote cluster {name} is not configured (cluster.remote.{name}.seeds): the rules "
        "searching it would fail"
        for name in named
        if not any(fnmatch.fnmatchcase(alias, name) for alias in configured)
    ]
    resolved = _resolved(elastic, aliases)
    for alias in aliases:
        info = {**configured[alias], **resolved.get(alias, {})}
        connected = bool(info.get("connected"))
        version = (info.get("version") or {}).get("number", "unknown")
        state = "connected" if connected else "NOT connected"
        skip = str(info.get("skip_unavailable")).lower()
        print(f"remote cluster {alias}: {state}, skip_unavailable: {skip}, version: {version}")
        if not connected:
            errors.append(
                f"remote cluster {alias} is not connected: every execution of the rules "
                "searching it fails until it is back (no alert is built without it)"
            )
    return errors


def _resolved(elastic: Elastic, aliases: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
    """`_resolve/cluster` (8.13+): it connects to each remote now and says its version; empty
    where it cannot be asked (`_remote/info`'s `connected` is used then)."""
    if not aliases:
        return {}
    try:
        return elastic.resolve_cluster([f"{alias}:*" for alias in aliases])
    except ElasticsearchError:
        return {}
