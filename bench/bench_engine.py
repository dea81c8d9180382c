"""Benchmark of one rule execution on a realistic volume (a script, not a test).

Loads, once, into the Elasticsearch of the settings (`DETECTOR_ES_*`, e.g. `scripts/local-es`):
a 7-day history of 1,000,000 matching events over 100,000 distinct sources, and a 9-minute
window with 10,000 distinct sources of which 1% never appear in the history. Then runs the
built-in rule's execution several times (`--dry-run` semantics, so every run does the same
work) and reports the median latency, the Elasticsearch requests and the detector's peak
memory. Results are printed and saved to `bench/results/` (gitignored).

    .venv/bin/python bench/bench_engine.py [--runs 7] [--reload]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import random
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from elasticsearch import helpers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from detector.alerts.store import AlertStore  # noqa: E402
from detector.engine import execution  # noqa: E402
from detector.es.client import Elastic  # noqa: E402
from detector.results import ExecutionResult  # noqa: E402
from detector.rules import Rule, builtin_rules  # noqa: E402
from detector.settings import load_settings  # noqa: E402

INDEX = "logs-aws.cloudtrail-bench"
ALERTS = "detector-alerts-bench"
NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
HISTORY_EVENTS = 1_000_000
HISTORY_SOURCES = 100_000
WINDOW_SOURCES = 10_000
NEW_FRACTION = 0.01
WINDOW_EVENTS_PER_SOURCE = 2
RESULTS = ROOT / "bench" / "results"
MAPPING: dict[str, Any] = {
    "properties": {
        "@timestamp": {"type": "date"},
        "event": {
            "properties": {
                name: {"type": "date" if name == "ingested" else "keyword"}
                for name in ("ingested", "dataset", "provider", "action", "outcome", "id")
            }
        },
        "cloud": {"properties": {"account": {"properties": {"id": {"type": "keyword"}}}}},
        "aws": {
            "properties": {
                "cloudtrail": {
                    "properties": {"user_identity": {"properties": {"type": {"type": "keyword"}}}}
                }
            }
        },
        "source": {"properties": {"address": {"type": "keyword"}, "ip": {"type": "ip"}}},
    }
}


def source_address(number: int) -> str:
    return f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"


def document(number: int, at: datetime, rng: random.Random) -> dict[str, Any]:
    address = source_address(number)
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "@timestamp": stamp,
        "event": {
            "ingested": stamp,
            "dataset": "aws.cloudtrail",
            "provider": "s3.amazonaws.com",
            "action": rng.choice(("GetObject", "ListObjects", "PutObject")),
            "outcome": "success",
        },
        "cloud": {"account": {"id": "anonymous"}},
        "aws": {"cloudtrail": {"user_identity": {"type": "AWSAccount"}}},
        "source": {"address": address, "ip": address},
    }


def events(rng: random.Random) -> Iterator[dict[str, Any]]:
    """History events (every source at least once), then the window's events."""
    # Inside the 7-day history and clear of the window: [now-7d+1h, now-1h].
    start, span_ms = (
        NOW - timedelta(days=7, hours=-1),
        (timedelta(days=7, hours=-2)) // timedelta(milliseconds=1),
    )
    for n in range(HISTORY_EVENTS):
        source = n if n < HISTORY_SOURCES else rng.randrange(HISTORY_SOURCES)
        at = start + timedelta(milliseconds=rng.randrange(span_ms))
        yield {"_index": INDEX, "_source": document(source, at, rng)}
    new = int(WINDOW_SOURCES * NEW_FRACTION)
    known = rng.sample(range(HISTORY_SOURCES), WINDOW_SOURCES - new)
    window_sources = known + list(range(HISTORY_SOURCES, HISTORY_SOURCES + new))
    for source in window_sources:
        for _ in range(WINDOW_EVENTS_PER_SOURCE):
            at = NOW - timedelta(milliseconds=rng.randrange(1, 8 * 60_000))
            yield {"_index": INDEX, "_source": document(source, at, rng)}


def load(elastic: Elastic, reload: bool) -> float:
    """Create and fill the index unless it is already complete; returns seconds spent."""
    expected = HISTORY_EVENTS + WINDOW_SOURCES * WINDOW_EVENTS_PER_SOURCE
    client = elastic.client
    complete = client.indices.exists(index=INDEX) and client.count(index=INDEX)["count"] == expected
    if complete and not reload:
        return 0.0
    client.options(ignore_status=404).indices.delete(index=INDEX)
    client.indices.create(
        index=INDEX,
        settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
        mappings=MAPPING,
    )
    started = time.monotonic()
    for ok, item in helpers.parallel_bulk(
        client, events(random.Random(7)), thread_count=4, chunk_size=5000
    ):
        if not ok:
            raise RuntimeError(f"bulk item failed: {item}")
    client.indices.put_settings(index=INDEX, settings={"refresh_interval": "1s"})
    client.indices.refresh(index=INDEX)
    client.indices.forcemerge(index=INDEX, max_num_segments=1)
    return time.monotonic() - started


def run(elastic: Elastic, store: AlertStore, rule: Rule) -> tuple[ExecutionResult, int]:
    tracemalloc.start()
    try:
        result = execution.execute(elastic, store, rule, NOW, dry_run=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--reload", action="store_true", help="reload the data")
    args = parser.parse_args()
    settings = load_settings(alerts_index=ALERTS, es_request_timeout=120.0)
    elastic = Elastic(settings)
    info = elastic.wait_ready()
    load_seconds = load(elastic, args.reload)
    rule = dataclasses.replace(
        next(r for r in builtin_rules() if r.new_terms_fields == ("source.address",)),
        index=(INDEX,),
    )
    store = AlertStore(elastic, ALERTS)
    results = [run(elastic, store, rule) for _ in range(args.runs)]
    elastic.close()
    report = _report(info.version, load_seconds, results)
    print(json.dumps(report, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = datetime.now(UTC).strftime("bench_engine-%Y%m%dT%H%M%SZ.json")
    (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if all(result.succeeded for result, _ in results) else 1


def _report(
    version: str, load_seconds: float, results: list[tuple[ExecutionResult, int]]
) -> dict[str, Any]:
    last = results[-1][0]
    durations = [result.duration_ms for result, _ in results]
    return {
        "elasticsearch": version,
        "python": platform.python_version(),
        "history_events": HISTORY_EVENTS,
        "history_sources": HISTORY_SOURCES,
        "window_sources": WINDOW_SOURCES,
        "load_seconds": round(load_seconds, 1),
        "runs": len(results),
        "median_ms": statistics.median(durations),
        "min_ms": min(durations),
        "max_ms": max(durations),
        "median_search_ms": statistics.median(result.search_ms for result, _ in results),
        "requests_per_run": last.requests,
        "terms_checked": last.terms_checked,
        "new_terms": last.new_terms,
        "alerts": len(last.alerts),
        "overflow": last.overflow,
        "peak_traced_mib": round(max(peak for _, peak in results) / 2**20, 2),
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "status": sorted({result.status for result, _ in results}),
    }


if __name__ == "__main__":
    raise SystemExit(main())
