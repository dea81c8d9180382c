"""Side-by-side benchmark (a script, not a test): the detector, Kibana's V1 request pattern
issued by hand and the floor (`bench/methods.py`), interleaved, on one node, same data.

Cases (data sets of `bench/datasets.py`, loaded first with `bench/datasets.py NAME...`):
`single` (1M history), `single10m` (with `extra`: 10M history, same sources), `pairs` (two
fields, 100,000 window combinations), `wide` (1,000,000 window terms: the detector's peak RSS,
measured in a process of its own), `rules49` (Elastic's 49 AWS rules in one `detector once`
pass over a CloudTrail-shaped corpus, on the `DETECTOR_RULE_CONCURRENCY` pool).

    .venv/bin/python bench/bench_compare.py [--runs 5] [CASE...]

Medians, ratios, requests, Elasticsearch `took`; results in `bench/results/` (gitignored).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus49
import datasets
import methods

from detector import kql
from detector.alerts.store import AlertStore
from detector.engine import execution
from detector.engine.history import AggregationHistory
from detector.query import bodies
from detector.query.baseline import BaselineCache
from detector.query.bodies import Plan
from detector.query.window import time_fields, window_for
from detector.results import ExecutionResult, Values
from detector.rules import Rule, builtin_rules, load_rules
from detector.service import pool
from detector.settings import Settings, load_settings

NOW = datasets.NOW
ALERTS = "detector-alerts-bench"
RULES49 = Path(__file__).resolve().parents[2] / "shared" / "rules" / "elastic-new-terms-aws"
RESULTS = Path(__file__).resolve().parent / "results"
CASES = {
    "single": (("source.address",), (datasets.INDICES["single"],)),
    "single10m": (("source.address",), (datasets.INDICES["single"], datasets.INDICES["extra"])),
    "pairs": (("source.address", "tls.client.server_name"), (datasets.INDICES["pairs"],)),
    "wide": (("source.address",), (datasets.INDICES["wide"],)),
}
Method = Callable[[methods.TookElastic, Rule], tuple[int, set[Values] | int]]


def _settings() -> Settings:
    return load_settings(alerts_index=ALERTS, es_request_timeout=300.0)


def rule_for(case: str) -> Rule:
    fields, index = CASES[case]
    builtin = next(r for r in builtin_rules() if r.new_terms_fields == ("source.address",))
    return dataclasses.replace(builtin, index=index, new_terms_fields=fields)


def plan_for(rule: Rule) -> Plan:
    base = bodies.rule_filter(kql.to_dsl(rule.query), [])
    return Plan(rule, window_for(rule, NOW), time_fields(rule), base)


def _detector(history: bool = False) -> Method:
    # As under `detector run`: the runner's cache of how far back the data reaches, so a mature
    # baseline is not asked again (the warm-up round asks it once).
    baselines = BaselineCache()

    def run(elastic: methods.TookElastic, rule: Rule) -> tuple[int, set[Values] | int]:
        store = AlertStore(elastic, ALERTS)
        chosen = AggregationHistory(elastic) if history else None
        result = execution.execute(
            elastic, store, rule, NOW, dry_run=True, history=chosen, baselines=baselines
        )
        assert result.succeeded, result.error
        return result.requests, result.new_terms

    return run


def _pattern(function: Callable[[methods.TookElastic, Plan], set[Values]]) -> Method:
    def run(elastic: methods.TookElastic, rule: Rule) -> tuple[int, set[Values] | int]:
        before = elastic.stats.requests
        found = function(elastic, plan_for(rule))
        return elastic.stats.requests - before, found

    return run


METHODS: dict[str, Method] = {
    "detector": _detector(),
    "kibana_v1": _pattern(methods.kibana_v1),
    "floor": _pattern(methods.floor),
}


def compare(case: str, runs: int, extra: dict[str, Method]) -> dict[str, Any]:
    """Every method `runs` times, interleaved (one warm-up round first)."""
    rule, chosen = rule_for(case), {**METHODS, **extra}
    samples: dict[str, list[tuple[float, int, int]]] = {name: [] for name in chosen}
    news: dict[str, int] = {}
    elastic = methods.TookElastic(_settings())
    for round_ in range(runs + 1):
        for name, method in chosen.items():
            took = elastic.took_ms
            started = time.perf_counter()
            requests, found = method(elastic, rule)
            ms = (time.perf_counter() - started) * 1000
            news[name] = found if isinstance(found, int) else len(found)
            if round_:
                samples[name].append((ms, requests, elastic.took_ms - took))
    elastic.close()
    floor_ms = statistics.median(s[0] for s in samples["floor"])
    report: dict[str, Any] = {"case": case, "new_terms": news}
    for name, rows in samples.items():
        median = statistics.median(row[0] for row in rows)
        report[name] = {
            "median_ms": round(median, 1),
            "min_ms": round(min(row[0] for row in rows), 1),
            "x_floor": round(median / floor_ms, 2),
            "requests": rows[-1][1],
            "median_took_ms": statistics.median(row[2] for row in rows),
        }
    return report


def rss(case: str) -> dict[str, Any]:
    """The detector once, in a process of its own: its wall time and peak RSS."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", case], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.splitlines()[-1]))


def _rss_child(case: str) -> int:
    elastic = methods.TookElastic(_settings())
    started = time.perf_counter()
    requests, new = _detector()(elastic, rule_for(case))
    report = {
        "case": case,
        "wall_ms": round((time.perf_counter() - started) * 1000),
        "requests": requests,
        "took_ms": elastic.took_ms,
        "new_terms": new,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(report))
    return 0


def rules49(concurrency: int) -> dict[str, Any]:
    """The 49 rules in one pass on the pool, as `detector once --dry-run` runs them."""
    loaded = load_rules([RULES49])
    rules = [dataclasses.replace(r, index=(corpus49.INDEX,)) for r in loaded.rules]
    settings = _settings().model_copy(update={"rule_concurrency": concurrency})
    elastics: list[methods.TookElastic] = []

    class Counted(methods.TookElastic):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            elastics.append(self)

    with methods.TookElastic(settings) as elastic:
        load_s = corpus49.load(elastic.client, rules, NOW)
    started = time.perf_counter()
    results: list[ExecutionResult] = list(
        pool.run_rules(settings, rules, lambda runner, rule: runner.dry_run(rule, NOW), Counted)
    )
    wall = time.perf_counter() - started
    return {
        "case": f"rules49 (concurrency {concurrency})",
        "rules": len(rules),
        "load_s": round(load_s, 1),
        "wall_ms": round(wall * 1000),
        "requests": sum(r.requests for r in results),
        "took_ms": sum(e.took_ms for e in elastics),
        "failed": [r.rule_id for r in results if not r.succeeded],
        "alerts": sum(len(r.alerts) for r in results),
        "new_terms": sum(r.new_terms for r in results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("cases", nargs="*", default=["single", "pairs", "wide", "rules49"])
    args = parser.parse_args()
    if args.rss_child:
        return _rss_child(args.rss_child)
    reports: list[dict[str, Any]] = []
    for case in args.cases:
        if case == "wide":
            report = rss("wide")
        elif case == "rules49":
            report = {"sequential": rules49(1), "pool": rules49(_settings().rule_concurrency)}
        else:
            extra = {"detector_batch_history": _detector(True)} if case == "pairs" else {}
            report = compare(case, args.runs, extra)
            report["detector_process"] = rss(case)
        print(json.dumps(report, indent=2), flush=True)
        reports.append(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = datetime.now(UTC).strftime("bench_compare-%Y%m%dT%H%M%SZ.json")
    (RESULTS / name).write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
