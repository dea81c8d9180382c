"""The benchmark's data sets, loaded once into the node of `DETECTOR_ES_*` (a script's helper).

- `single`: bench_engine's index: 7 days, 1,000,000 matching history events over 100,000
  sources; a 9-minute window of 10,000 sources, 1% new;
- `extra`: 9,000,000 more history events over the same sources (with `single`: 10M history);
- `pairs`: two fields (`source.address`, `tls.client.server_name`): 1,000,000 history events
  over 200,000 pairs; a window of 100,000 pairs, 1% new;
- `wide`: a window of 1,000,000 distinct sources (1% new) over a history of 990,000 of them.

    .venv/bin/python bench/datasets.py single extra pairs wide
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch, helpers

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_engine as base

NOW = base.NOW
INDICES = {
    "single": base.INDEX,
    "extra": "logs-aws.cloudtrail-bench-extra",
    "pairs": "logs-aws.cloudtrail-bench-pairs",
    "wide": "logs-aws.cloudtrail-bench-wide",
}
# 9,000,000 for the 10M case; smaller (BENCH_EXTRA_EVENTS) when loading time is short.
EXTRA_EVENTS = int(os.environ.get("BENCH_EXTRA_EVENTS", "9000000"))
PAIR_HISTORY_EVENTS, HISTORY_PAIRS, WINDOW_PAIRS = 1_000_000, 200_000, 100_000
WIDE_TERMS = 1_000_000
BUCKETS = 1_000
MAPPING: dict[str, Any] = {
    "properties": {
        **base.MAPPING["properties"],
        "tls": {
            "properties": {
                "client": {"properties": {"server_name": {"type": "keyword"}}},
            }
        },
    }
}
_HISTORY_SPAN_MS = timedelta(days=7, hours=-2) // timedelta(milliseconds=1)
_HISTORY_START = NOW - timedelta(days=7, hours=-1)


def _history_doc(source: int, rng: random.Random, pair: int | None = None) -> dict[str, Any]:
    at = _HISTORY_START + timedelta(milliseconds=rng.randrange(_HISTORY_SPAN_MS))
    return _with_host(base.document(source, at, rng), pair)


def _window_doc(source: int, rng: random.Random, pair: int | None = None) -> dict[str, Any]:
    at = NOW - timedelta(milliseconds=rng.randrange(1, 8 * 60_000))
    return _with_host(base.document(source, at, rng), pair)


def _with_host(doc: dict[str, Any], pair: int | None) -> dict[str, Any]:
    if pair is not None:
        doc["tls"] = {"client": {"server_name": f"b{pair % BUCKETS}.s3.amazonaws.com"}}
    return doc


def extra_events(rng: random.Random) -> Iterator[dict[str, Any]]:
    for _ in range(EXTRA_EVENTS):
        yield _history_doc(rng.randrange(base.HISTORY_SOURCES), rng)


def _pair(number: int) -> tuple[int, int]:
    """Pair number -> (source, bucket host index): 200,000 pairs over 50,000 sources."""
    return number // 4, number


def pair_events(rng: random.Random) -> Iterator[dict[str, Any]]:
    for n in range(PAIR_HISTORY_EVENTS):
        number = n if n < HISTORY_PAIRS else rng.randrange(HISTORY_PAIRS)
        source, pair = _pair(number)
        yield _history_doc(source, rng, pair)
    new = WINDOW_PAIRS // 100
    known = rng.sample(range(HISTORY_PAIRS), WINDOW_PAIRS - new)
    for number in known:
        source, pair = _pair(number)
        yield _window_doc(source, rng, pair)
    # New pairs: known sources with a bucket host no history document has.
    for k in range(new):
        doc = _window_doc(k, rng)
        doc["tls"] = {"client": {"server_name": f"new-{k}.s3.amazonaws.com"}}
        yield doc


def wide_events(rng: random.Random) -> Iterator[dict[str, Any]]:
    seen = WIDE_TERMS - WIDE_TERMS // 100
    for source in range(seen):
        yield _history_doc(source, rng)
    for source in range(WIDE_TERMS):
        yield _window_doc(source, rng)


GENERATORS: dict[str, tuple[Callable[[random.Random], Iterator[dict[str, Any]]], int]] = {
    "extra": (extra_events, EXTRA_EVENTS),
    "pairs": (pair_events, PAIR_HISTORY_EVENTS + WINDOW_PAIRS),
    "wide": (wide_events, 2 * WIDE_TERMS - WIDE_TERMS // 100),
}


def load(client: Elasticsearch, name: str) -> float:
    """Create and fill one data set unless it is complete; seconds spent."""
    index = INDICES[name]
    generate, expected = GENERATORS[name]
    if client.indices.exists(index=index) and client.count(index=index)["count"] == expected:
        return 0.0
    client.options(ignore_status=404).indices.delete(index=index)
    # refresh_interval -1 and no replica while loading; one segment afterwards.
    client.indices.create(
        index=index,
        settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
        mappings=MAPPING,
    )
    started = time.monotonic()
    actions = ({"_index": index, "_source": doc} for doc in generate(random.Random(11)))
    for ok, item in helpers.parallel_bulk(
        client, actions, thread_count=2, chunk_size=20_000, max_chunk_bytes=50 * 2**20
    ):
        if not ok:
            raise RuntimeError(f"bulk item failed: {item}")
    client.indices.put_settings(index=index, settings={"refresh_interval": "1s"})
    client.indices.refresh(index=index)
    client.options(request_timeout=3600).indices.forcemerge(index=index, max_num_segments=1)
    return time.monotonic() - started


def main() -> int:
    from detector.es.client import Elastic
    from detector.settings import load_settings

    elastic = Elastic(load_settings(es_request_timeout=600.0))
    for name in sys.argv[1:]:
        if name == "single":
            seconds = base.load(elastic, reload=False)
        else:
            seconds = load(elastic.client, name)
        print(f"{name}: loaded in {seconds:.0f} s", flush=True)
    elastic.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
