"""A CloudTrail-shaped corpus for Elastic's 49 AWS new_terms rules (a script's helper).

For each rule, documents that satisfy the positive `field: value` clauses of its KQL (read off
the query text: a rough reading, good enough for a load), with its new-terms fields drawn from
pools so that most are seen in the 10-day history and a few are new in the last 6 minutes.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch, helpers

from detector.cloudtrail.template import ECS_MAPPINGS
from detector.rules import Rule

INDEX = "logs-aws.cloudtrail-bench-rules49"
HISTORY_PER_RULE, WINDOW_PER_RULE, NEW_PER_RULE = 2_000, 60, 6
_CLAUSE = re.compile(r'(?<!not )([a-z_][\w.\-]*)\s*:\s*\(?\s*"?([\w\-./@:]+)"?', re.IGNORECASE)


def _clauses(kql: str) -> dict[str, str]:
    """The first value of each field the query requires (clauses after `not` are skipped)."""
    found: dict[str, str] = {}
    for field, value in _CLAUSE.findall(kql):
        if "*" not in value and value not in ("and", "or", "not"):
            found.setdefault(field, value)
    return found


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        child = doc.setdefault(part, {})
        if not isinstance(child, dict):
            return
        doc = child
    doc.setdefault(parts[-1], value)


def _value(field: str, number: int) -> str | int:
    if field.endswith(".number"):
        return number
    if field.endswith(".ip") or field == "source.address":
        return f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"
    return f"{field.rsplit('.', 1)[-1]}-{number}"


def documents(rules: list[Rule], now: datetime, rng: random.Random) -> Iterator[dict[str, Any]]:
    """History then window documents for every rule."""
    for rule in rules:
        required = _clauses(rule.query)
        for n in range(HISTORY_PER_RULE + WINDOW_PER_RULE):
            window = n >= HISTORY_PER_RULE
            if window:
                at = now - timedelta(milliseconds=rng.randrange(1, 5 * 60_000))
                fresh = n - HISTORY_PER_RULE < NEW_PER_RULE
                number = 10_000 + n if fresh else rng.randrange(200)
            else:
                at = now - timedelta(minutes=7, milliseconds=rng.randrange(9 * 86_400_000))
                number = rng.randrange(200)
            stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            doc: dict[str, Any] = {"@timestamp": stamp, "event": {"ingested": stamp}}
            for field in rule.new_terms_fields:
                _put(doc, field, _value(field, number))
            for field, value in required.items():
                _put(doc, field, value)
            _put(doc, "data_stream.dataset", "aws.cloudtrail")
            _put(doc, "event.dataset", "aws.cloudtrail")
            _put(doc, "event.outcome", "success")
            yield {"_index": INDEX, "_source": doc}


def load(client: Elasticsearch, rules: list[Rule], now: datetime) -> float:
    """Create and fill the corpus unless it is complete; seconds spent (0 when it was)."""
    expected = len(rules) * (HISTORY_PER_RULE + WINDOW_PER_RULE)
    if client.indices.exists(index=INDEX) and client.count(index=INDEX)["count"] == expected:
        return 0.0
    client.options(ignore_status=404).indices.delete(index=INDEX)
    client.indices.create(
        index=INDEX,
        settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
        mappings=ECS_MAPPINGS,
    )
    started = time.monotonic()
    for ok, item in helpers.parallel_bulk(
        client, documents(rules, now, random.Random(5)), thread_count=2, chunk_size=10_000
    ):
        if not ok:
            raise RuntimeError(f"bulk item failed: {item}")
    client.indices.put_settings(index=INDEX, settings={"refresh_interval": "1s"})
    client.indices.refresh(index=INDEX)
    return time.monotonic() - started
