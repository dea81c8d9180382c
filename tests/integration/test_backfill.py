"""`detector backfill` and `runner.backfill`: a day replayed equals the scheduled executions."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from detector.alerts.store import AlertStore
from detector.es.client import Elastic
from detector.schedule.catchup import backfill_times
from detector.service.runner import backfill
from detector.settings import Settings
from tests.integration.test_catchup_runs import EVERY
from tests.integration.test_engine import T0, cloudtrail_index, event, token_rule
from tests.integration.test_engine_runs import rule_file
from tests.support.commands import detector_env
from tests.support.es_node import EsNode
from tests.support.runs import (
    MakeRunner,
    add_events,
    alerts_index,
    alerts_of,
    log_docs,
)

END = T0 + timedelta(hours=24)


def day_of_events() -> list[dict[str, object]]:
    hours = [
        ("198.51.100.1", -48.0),
        ("198.51.100.1", 2.0),  # seen two days before
        ("198.51.100.2", 0.5),
        ("198.51.100.3", 6.25),
        ("198.51.100.3", 6.5),
        ("198.51.100.4", 13.0),
        ("203.0.113.5", 18.75),
        ("203.0.113.6", 23.9),
    ]
    return [event(source, T0 + timedelta(hours=at)) for source, at in hours]


def detector(node: EsNode, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "detector", *args],
        env=detector_env(node, **env),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_a_day_of_backfill_equals_the_scheduled_executions_and_a_rerun_adds_nothing(
    elastic: Elastic,
    es_node: EsNode,
    es_settings: Settings,
    token: str,
    make_runner: MakeRunner,
    tmp_path: Path,
) -> None:
    rule = token_rule(token)
    index = cloudtrail_index(token)
    add_events(elastic, index, day_of_events())
    times = backfill_times(T0, END, EVERY)
    scheduled = make_runner("scheduled")
    for now in times:
        scheduled.run_due(rule, now)
    filled = make_runner("filled")
    seen: list[tuple[int, int]] = []

    results = backfill(
        elastic,
        AlertStore(elastic, alerts_index(filled)),
        filled.executions,
        [rule],
        T0,
        END,
        progress=lambda done, total, _: seen.append((done, total)),
    )

    assert [result.now for result in results] == times
    assert all(result.succeeded for result in results)
    expected = alerts_of(scheduled)
    assert len(expected) == 5
    assert alerts_of(filled) == expected
    assert seen[-1] == (289, 289)
    logged = log_docs(filled)
    assert len(logged) == 289
    assert {doc["execution"]["type"] for doc in logged} == {"manual"}
    assert filled.executions.checkpoint(rule.rule_id) is None  # a backfill is not the schedule

    env = {
        "DETECTOR_ALERTS_INDEX": alerts_index(filled),
        "DETECTOR_EXECUTION_LOG_INDEX": filled.executions.index,
        "DETECTOR_BUILTIN_RULES": "false",
        "DETECTOR_RULES_PATH": str(rule_file(tmp_path, [index])),
    }
    rerun = detector(
        es_node, env, "backfill", "--start", "2025-01-15T12:00:00Z", "--end", "2025-01-16T12:00:00Z"
    )

    assert rerun.returncode == 0, rerun.stderr
    assert "backfill: 289 execution(s), 0 failed, 0 alert(s) written" in rerun.stdout
    assert (
        f"{rule.rule_id} ({rule.name}): 289 execution(s) from 2025-01-15T12:00:00Z" in rerun.stdout
    )
    assert "backfill [##############################] 289/289" in rerun.stderr
    # The plan comes first; the per-execution INFO lines would bury the bar (DEBUG instead).
    assert rerun.stderr.startswith("backfill: 289 execution(s) of 1 rule(s) from 2025-01-15T12:")
    assert "INFO    detector.engine.execution" not in rerun.stderr
    assert "INFO    detector.service.runner" not in rerun.stderr
    assert "Traceback" not in rerun.stderr
    assert alerts_of(filled) == expected
    assert len(log_docs(filled)) == 2 * 289
