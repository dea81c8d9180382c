"""Index patterns across clusters (cross-cluster search, `alias:pattern`). Pure.

Elasticsearch names a remote cluster's index `alias:index` in patterns, in `_field_caps`'
`indices` and in every hit's `_index`; `_clusters.details` names the cluster the request went to
`(local)`. Elastic's rules name local patterns: `DETECTOR_REMOTE_CLUSTERS` searches each of
them on the remotes as well (`with_remotes`), as if the rule file listed `east:logs-*` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# The alias `_clusters.details` gives the cluster the request was sent to.
LOCAL_CLUSTER = "(local)"
# `DETECTOR_REMOTE_CLUSTERS=*`: every remote cluster configured, through Elasticsearch's own
# alias wildcard (`*:logs-*`), so a remote configured later is searched without a restart and
# no request is spent listing them (`_remote/info`).
EVERY_REMOTE = "*"


def cluster_of(index: str) -> str:
    """The cluster alias of an index name or pattern (`east:logs-x` -> `east`), else `(local)`."""
    alias, colon, _ = index.partition(":")
    return alias if colon else LOCAL_CLUSTER


def clusters_of(indices: Iterable[str]) -> tuple[str, ...]:
    """The distinct clusters of these indices, sorted."""
    return tuple(sorted({cluster_of(index) for index in indices}))


def with_remotes(patterns: Sequence[str], remotes: Sequence[str]) -> tuple[str, ...]:
    """`patterns` and, beside each local one, the same pattern on every remote of `remotes`
    (`*`: all of them); patterns that name a cluster already are kept as they are."""
    searched: list[str] = []
    for pattern in patterns:
        searched.append(pattern)
        if cluster_of(pattern) == LOCAL_CLUSTER:
            searched.extend(remote_pattern(alias, pattern) for alias in remotes)
    return tuple(dict.fromkeys(searched))


def remote_pattern(alias: str, pattern: str) -> str:
    """`pattern` on the cluster `alias`; an exclusion (`-logs-x`) is written `alias:-logs-x`,
    the form Elasticsearch resolves on the remote."""
    if pattern.startswith("-"):
        return f"{alias}:-{pattern[1:]}"
    return f"{alias}:{pattern}"


def exclusion(index: str) -> str:
    """The pattern that leaves the concrete index `index` out (`remote_pattern` for a remote)."""
    alias, colon, name = index.partition(":")
    return f"{alias}:-{name}" if colon else f"-{index}"


def remotes_named(patterns: Iterable[str]) -> tuple[str, ...]:
    """The remote cluster aliases (or alias patterns) these index patterns name, sorted."""
    return tuple(sorted({cluster_of(p) for p in patterns} - {LOCAL_CLUSTER}))
