"""Benchmark: `detector preview` against `detector backfill` over the same 7 days (a script).

Loads into the Elasticsearch of the settings (`DETECTOR_ES_*`) an index of its own with
`--events` matching events (default 1,000,000) over 14 days: the 7-day history of the first
execution and the 7 days of the range, from a pool of 100,000 sources (skewed: a few are
frequent), plus a trickle of sources never seen before (3 an hour), and one burst of 150 new
sources in one window (beyond `max_signals` 100: overflow carried). Then, in one run, the
built-in rule's preview and its backfill of the range (2,016 executions every 5 minutes),
printing both times, the ratio, and whether they found the same alerts, with the machine's
load averages at the start and the end (the backfill reports its progress every
`--progress` executions: it runs for half an hour or more). Every index it created is deleted
at the end, whatever happens (also on SIGTERM: `kill PID` stops it cleanly).

    .venv/bin/python bench/bench_preview.py [--events 1000000] [--days 7] [--progress 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from elasticsearch import helpers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_engine as base  # noqa: E402

from detector.alerts.store import AlertStore  # noqa: E402
from detector.es.client import Elastic  # noqa: E402
from detector.es.templates import template_name  # noqa: E402
from detector.execution_log.store import ExecutionStore  # noqa: E402
from detector.preview import preview  # noqa: E402
from detector.results import ExecutionResult  # noqa: E402
from detector.rules import Rule, builtin_rules  # noqa: E402
from detector.service.runner import Progress, Runner  # noqa: E402
from detector.settings import load_settings  # noqa: E402
from detector.times import iso  # noqa: E402

TOKEN = f"benchpreview-{os.getpid()}"
INDEX = f"logs-aws.cloudtrail-{TOKEN}"
ALERTS = f"detector-alerts-{TOKEN}"
EXECUTIONS = f"detector-executions-{TOKEN}"
END = base.NOW
POOL = 100_000
NEW_PER_HOUR = 3
BURST = 150
BUILTIN_ID = "59bf26c2-bcbe-11ef-a215-f661ea17fbce"


def events(total: int, days: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """`total` events over `[END - days - 7d, END]`: the pool (skewed), the new sources, the
    burst."""
    start = END - timedelta(days=days + 7)
    span_ms = (END - start) // timedelta(milliseconds=1)
    range_start = END - timedelta(days=days)
    hours = days * 24
    new = [
        (POOL + n, range_start + timedelta(minutes=20 * n + 7)) for n in range(hours * NEW_PER_HOUR)
    ]
    burst_at = range_start + timedelta(days=days / 2, minutes=2)
    burst = [(POOL + len(new) + n, burst_at + timedelta(seconds=n)) for n in range(BURST)]
    for number, at in [*new, *burst]:
        yield _action(number, at, rng)
    for _ in range(total - len(new) - len(burst)):
        number = min(int(rng.paretovariate(0.4)) - 1, POOL - 1)
        yield _action(number, start + timedelta(milliseconds=rng.randrange(span_ms)), rng)


def _action(number: int, at: Any, rng: random.Random) -> dict[str, Any]:
    return {"_index": INDEX, "_source": base.document(number, at, rng)}


def load(elastic: Elastic, total: int, days: int) -> float:
    started = time.monotonic()
    client = elastic.client
    client.indices.create(
        index=INDEX,
        mappings=base.MAPPING,
        settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
    )
    stream = events(total, days, random.Random(7))
    for ok, item in helpers.parallel_bulk(
        client, stream, chunk_size=5000, thread_count=2, request_timeout=300
    ):
        if not ok:
            raise RuntimeError(f"bulk item failed: {item}")
    client.indices.put_settings(index=INDEX, settings={"refresh_interval": "1s"})
    client.indices.refresh(index=INDEX)
    client.options(request_timeout=600).indices.forcemerge(index=INDEX, max_num_segments=1)
    return time.monotonic() - started


def rule() -> Rule:
    builtin = next(r for r in builtin_rules() if r.rule_id == BUILTIN_ID)
    return dataclasses.replace(builtin, index=(INDEX,))


def written(elastic: Elastic) -> set[tuple[tuple[Any, ...], str]]:
    elastic.refresh(ALERTS)
    # Scrolled: 1M events give some 10,000 alerts, more than one page of hits.
    hits = helpers.scan(elastic.client, index=ALERTS, query={"query": {"match_all": {}}})
    return {
        (
            tuple(h["_source"]["kibana"]["alert"]["new_terms"]),
            h["_source"]["detector"]["first_seen"],
        )
        for h in hits
    }


def say(line: str) -> None:
    # Flushed: the benchmark runs long, its output usually goes to a log file.
    print(line, flush=True)


def load_averages() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def reporter(every: int) -> Progress:
    """A progress line every `every` executions: done, elapsed, failures, estimated rest."""
    began, failed = time.monotonic(), [0]

    def report(done: int, total: int, result: ExecutionResult) -> None:
        failed[0] += 0 if result.succeeded else 1
        if done % every and done != total:
            return
        elapsed = time.monotonic() - began
        rest = elapsed / done * (total - done)
        say(
            f"backfill: {done}/{total} executions, {elapsed:.0f} s, {failed[0]} failed, "
            f"about {rest:.0f} s left; {load_averages()}"
        )

    return report


def stop_cleanly(signum: int, frame: FrameType | None) -> None:
    # SIGTERM would end the process without `finally`: raise instead, so the indices go.
    raise SystemExit(f"stopped by signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--progress", type=int, default=50, help="executions per progress line")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop_cleanly)
    say(f"start: {load_averages()} ({os.cpu_count()} cores)")
    settings = load_settings(
        alerts_index=ALERTS, execution_log_index=EXECUTIONS, es_request_timeout=120.0
    )
    elastic = Elastic(settings)
    elastic.wait_ready()
    the_rule, start = rule(), END - timedelta(days=args.days)
    try:
        seconds = load(elastic, args.events, args.days)
        say(
            f"loaded {args.events:,} events over {args.days + 7} days into {INDEX} "
            f"in {seconds:.0f} s; {load_averages()}"
        )
        began = time.monotonic()
        found = preview(elastic, the_rule, start, END)
        preview_seconds = time.monotonic() - began
        say(
            f"preview:  {len(found.executions)} executions, {len(found.alerts)} would-be alerts, "
            f"{preview_seconds:.1f} s; {load_averages()}"
        )
        store, log = AlertStore(elastic, ALERTS), ExecutionStore(elastic, EXECUTIONS)
        store.ensure_index()
        log.ensure_index()
        began = time.monotonic()
        runner = Runner.on(elastic, store, log)
        results = runner.backfill([the_rule], start, END, reporter(args.progress))
        backfill_seconds = time.monotonic() - began
        alerts = written(elastic)
        failed = sum(not result.succeeded for result in results)
        say(
            f"backfill: {len(results)} executions ({failed} failed), {len(alerts)} alerts "
            f"written, {backfill_seconds:.1f} s"
        )
        same = alerts == {(a.values, iso(a.first_seen)) for a in found.alerts}
        say(
            f"range {iso(start)} .. {iso(END)}; same alerts: {same}; "
            f"backfill / preview = {backfill_seconds / preview_seconds:.1f}x; {load_averages()}"
        )
        return 0 if same else 1
    finally:
        for index in (INDEX, ALERTS, EXECUTIONS):
            elastic.client.indices.delete(index=index, ignore_unavailable=True)
        for index in (ALERTS, EXECUTIONS):
            elastic.client.options(ignore_status=404).indices.delete_index_template(
                name=template_name(index)
            )
        elastic.close()


if __name__ == "__main__":
    sys.exit(main())
