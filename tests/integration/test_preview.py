"""`detector preview` and `rules diff` on a real node: exactly the alerts a backfill of the same
range writes (and the brute-force oracle's), while writing nothing anywhere."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detector.es.client import Elastic
from detector.preview import Preview, preview
from detector.rules import Rule
from detector.rules.exceptions import ExceptionList, from_settings
from detector.schedule.catchup import backfill_times
from detector.service.runner import Runner
from detector.settings import Settings
from detector.times import iso
from tests.conftest import EsNode
from tests.integration.test_backfill import detector
from tests.integration.test_engine import (
    BUILTIN_ID,
    EVERY,
    T0,
    cloudtrail_index,
    event,
    filebeat_index,
    spec_for,
    token_rule,
)
from tests.integration.test_engine_runs import rule_file
from tests.support.bruteforce import Doc, Simulation, Spec, excluded_source, is_anonymous_s3_access
from tests.support.runs import MakeRunner, add_events, alerts_of

END = T0 + timedelta(hours=3)
DAY = timedelta(days=1)
Found = set[tuple[tuple[Any, ...], str]]


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def busy_range() -> list[dict[str, Any]]:
    """Three hours of a 7-day-history rule with every case a range can hold."""
    return [
        event("198.51.100.1", T0 - 2 * DAY),
        event("198.51.100.1", minutes(10)),  # seen two days before: silent
        event("198.51.100.2", T0 - 8 * DAY),
        event("198.51.100.2", minutes(20)),  # seen eight days before only: alerts
        # Seen 7 days minus 30 minutes before its return at +65: out of the history by then.
        event("198.51.100.3", T0 - 7 * DAY + timedelta(minutes=30)),
        event("198.51.100.3", minutes(65)),
        event("198.51.100.4", T0 - 7 * DAY + timedelta(hours=2)),
        event("198.51.100.4", minutes(65)),  # still in the history: silent
        # Five new at once with max_signals 2: the overflow is carried to the next execution
        # (its window still holds them), and the last one is lost when the window moves on.
        *(event(f"192.0.2.{n}", minutes(33 + n / 10)) for n in range(1, 6)),
        # Only an excepted client saw it a day before: not history, it alerts.
        event("198.51.100.9", T0 - DAY, user_agent="excepted-scanner"),
        event("198.51.100.9", minutes(50)),
        event("198.51.100.10", minutes(80), user_agent="excepted-scanner"),  # excepted
        event("203.0.113.7", minutes(90)),  # an excepted address
        event("198.51.100.11", minutes(100), ingested=None),  # `@timestamp`, the fallback
        # The same term again a window later: history by then, one alert.
        event("198.51.100.12", minutes(120)),
        event("198.51.100.12", minutes(131)),
        event("198.51.100.13", END - timedelta(minutes=1)),
    ]


def exceptions_for(tmp_path: Path) -> tuple[ExceptionList, Settings]:
    path = tmp_path / "exceptions.toml"
    path.write_text(
        f'[[exception]]\nrule_id = "{BUILTIN_ID}"\nfield = "user_agent.original"\n'
        'values = ["excepted-scanner"]\n',
        encoding="utf-8",
    )
    settings = Settings(
        _env_file=None, exception_source_addresses=["203.0.113.0/24"], exceptions_file=path
    )
    return from_settings(settings), settings


def excepted_predicate(settings: Settings) -> Any:
    by_source = excluded_source(settings.exception_source_addresses)

    def predicate(source: Mapping[str, Any]) -> bool:
        by_agent = "excepted-scanner" in str(source.get("user_agent"))
        return is_anonymous_s3_access(source) and not by_source(source) and not by_agent

    return predicate


def backfilled(
    make_runner: MakeRunner,
    rule: Rule,
    exceptions: ExceptionList,
    baseline: str = "alert",
    end: datetime = END,
) -> tuple[Found, Runner]:
    runner = make_runner("backfill", exceptions=exceptions, baseline_mode=baseline)
    results = runner.backfill([rule], T0, end)
    assert all(result.error is None for result in results)
    return {(terms, seen) for terms, seen in alerts_of(runner).values()}, runner


def previewed(found: Preview) -> Found:
    return {(alert.values, iso(alert.first_seen)) for alert in found.alerts}


def oracle(docs: list[Doc], spec: Spec, end: datetime = END) -> Found:
    simulation = Simulation(docs, spec)
    return {
        (item.values, iso(item.first_seen))
        for now in backfill_times(T0, end, EVERY)
        for item in simulation.run(now)
    }


def test_preview_gives_the_terms_backfill_writes_with_overflow_exceptions_and_a_return(
    elastic: Elastic, token: str, make_runner: MakeRunner, tmp_path: Path
) -> None:
    rule = token_rule(token, max_signals=2)
    exceptions, settings = exceptions_for(tmp_path)
    docs = busy_range()
    add_events(elastic, cloudtrail_index(token), docs)
    spec = spec_for(rule, predicate=excepted_predicate(settings))
    indexed = [Doc(cloudtrail_index(token), doc) for doc in docs]

    found = preview(elastic, rule, T0, END, exceptions=exceptions)

    written, _ = backfilled(make_runner, rule, exceptions)
    assert previewed(found) == written == oracle(indexed, spec)
    terms = sorted(alert.values[0] for alert in found.alerts)
    alerting = ["198.51.100.2", "198.51.100.3", "198.51.100.9", "198.51.100.11"]
    assert terms == sorted(
        [*alerting, "198.51.100.12", "198.51.100.13", *(f"192.0.2.{n}" for n in range(1, 5))]
    )
    carried = {alert.values[0]: alert.overflow_carried for alert in found.alerts}
    assert carried["192.0.2.1"] == carried["192.0.2.2"] == 0
    assert carried["192.0.2.3"] == carried["192.0.2.4"] == 1
    over = [done for done in found.executions if done.tally.overflow]
    assert [done.tally.overflow for done in over] == [3, 1]


def test_preview_details_are_the_alerts_details(
    elastic: Elastic, token: str, make_runner: MakeRunner, tmp_path: Path
) -> None:
    rule = token_rule(token, max_signals=2)
    exceptions, _ = exceptions_for(tmp_path)
    add_events(elastic, cloudtrail_index(token), busy_range())
    found = preview(elastic, rule, T0, END, exceptions=exceptions)
    _, runner = backfilled(make_runner, rule, exceptions)
    body = {"size": 100, "query": {"match_all": {}}}
    hits = elastic.search([runner.store.index], body)["hits"]["hits"]  # type: ignore[attr-defined]
    stored = {
        (
            tuple(hit["_source"]["kibana"]["alert"]["new_terms"]),
            hit["_source"]["detector"]["first_seen"],
        ): hit["_source"]
        for hit in hits
    }
    for alert in found.alerts:
        source = stored[(alert.values, iso(alert.first_seen))]
        assert iso(alert.window.start) == source["detector"]["window"]["start"]
        assert alert.event_count == source["detector"]["event_count"]
        assert list(alert.actions) == source["detector"]["actions"]
        assert alert.document is not None
        assert alert.document == (
            source["kibana"]["alert"]["ancestors"][0]["index"],
            source["kibana"]["alert"]["ancestors"][0]["id"],
        )


@pytest.mark.parametrize("mode", ["hold", "alert"])
def test_an_immature_baseline_holds_or_alerts_as_backfill_does(
    elastic: Elastic, token: str, make_runner: MakeRunner, mode: str
) -> None:
    rule = token_rule(token, baseline=mode)
    # The data starts 7 days before T0+60m: executions before T0+60m have a thin history.
    docs = [
        event("198.51.100.50", T0 - 7 * DAY + timedelta(hours=1)),
        event("198.51.100.51", minutes(20)),  # new while held
        event("198.51.100.52", minutes(58)),  # new at T0+60m, the first mature execution
        event("198.51.100.53", minutes(90)),
    ]
    add_events(elastic, cloudtrail_index(token), docs)

    found = preview(elastic, rule, T0, END)

    written, _ = backfilled(make_runner, rule, exceptions_for_none(), mode)
    assert previewed(found) == written
    terms = sorted(alert.values[0] for alert in found.alerts)
    if mode == "hold":
        assert terms == ["198.51.100.52", "198.51.100.53"]
        assert sum(done.tally.held for done in found.executions) == 2  # two windows held it
    else:
        assert terms == ["198.51.100.51", "198.51.100.52", "198.51.100.53"]
        assert found.alerts[0].baseline_coverage < 1


def exceptions_for_none() -> ExceptionList:
    from detector.rules.exceptions import NO_EXCEPTIONS

    return NO_EXCEPTIONS


@pytest.mark.parametrize(
    "changes",
    [
        {"new_terms_fields": ("source.address", "tls.client.server_name")},
        {"from_": "now-16m", "max_signals": 1},  # windows overlapping three times
        {"from_": "now-16m", "new_terms_fields": ("source.address", "tls.client.server_name")},
    ],
    ids=["two-fields", "overlapping", "both"],
)
def test_preview_equals_backfill_and_the_oracle_for_other_rule_shapes(
    elastic: Elastic, token: str, make_runner: MakeRunner, changes: dict[str, Any]
) -> None:
    rule = token_rule(token, **changes)
    docs = [
        event("198.51.100.1", T0 - 2 * DAY, bucket="alpha"),
        event("198.51.100.1", minutes(3), bucket="alpha"),
        event("198.51.100.1", minutes(4), bucket="beta"),
        event("198.51.100.2", minutes(6), bucket="alpha"),
        event("198.51.100.2", minutes(7), bucket="beta"),
        event("198.51.100.3", minutes(14), bucket="gamma"),
        event("198.51.100.3", minutes(26), bucket="gamma"),
        event("198.51.100.4", minutes(40), bucket="gamma"),
        event("198.51.100.5", minutes(41), bucket="gamma"),
    ]
    multi = event("198.51.100.6", minutes(50), bucket="delta")
    multi["source"]["address"] = ["198.51.100.6", "198.51.100.7"]
    add_events(elastic, cloudtrail_index(token), docs)
    add_events(elastic, filebeat_index(token), [multi])
    lookback = timedelta(minutes=16 if "from_" in changes else 9)
    spec = spec_for(rule, lookback=lookback)
    indexed = [Doc(cloudtrail_index(token), doc) for doc in docs]
    indexed.append(Doc(filebeat_index(token), multi))
    end = T0 + timedelta(hours=1)

    found = preview(elastic, rule, T0, end)

    written, _ = backfilled(make_runner, rule, exceptions_for_none(), end=end)
    assert previewed(found) == written == oracle(indexed, spec, end)
    assert found.alerts


def counts(elastic: Elastic) -> dict[str, int]:
    """Documents per index of the node (every index: a preview writes none)."""
    elastic.client.indices.refresh(index="*", expand_wildcards="all", ignore_unavailable=True)
    answer = elastic.client.cat.indices(format="json", expand_wildcards="all", h="index,docs.count")
    rows: list[dict[str, Any]] = answer.body if isinstance(answer.body, list) else []
    return {str(row["index"]): int(row["docs.count"] or 0) for row in rows}


def test_the_preview_command_writes_nothing_and_prints_json_lines(
    elastic: Elastic, es_node: EsNode, token: str, tmp_path: Path
) -> None:
    add_events(elastic, cloudtrail_index(token), busy_range())
    path = rule_file(tmp_path, [cloudtrail_index(token)])
    env = {
        "DETECTOR_ALERTS_INDEX": f"detector-alerts-{token}",
        "DETECTOR_EXECUTION_LOG_INDEX": f"detector-executions-{token}",
        "DETECTOR_BUILTIN_RULES": "false",
        "DETECTOR_RULES_PATH": str(path),
        "DETECTOR_NOTIFY_URLS": "json://127.0.0.1:9/never",
    }
    before = counts(elastic)

    listed = detector(
        es_node,
        env,
        "preview",
        "--rule",
        str(path),
        "--start",
        iso(T0),
        "--end",
        iso(END),
        "--json",
    )
    text = detector(
        es_node, env, "preview", "--rule", str(path), "--start", iso(T0), "--end", iso(END)
    )

    assert listed.returncode == 0, listed.stderr
    assert text.returncode == 0, text.stderr
    after = counts(elastic)
    ours = {name: n for name, n in after.items() if token in name}
    assert ours == {name: n for name, n in before.items() if token in name}
    assert not any(name.startswith(f"detector-alerts-{token}") for name in after)
    objects = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {tuple(item["new_terms"]) for item in objects} >= {("198.51.100.2",), ("198.51.100.13",)}
    assert {"rule_id", "new_terms", "first_seen", "execution"} <= set(objects[0])
    assert "would-be alert(s)" in text.stdout
    assert "2025-01-15: 37 execution(s)" in text.stdout
    assert "Traceback" not in listed.stderr + text.stderr


def test_rules_diff_shows_what_a_change_adds_and_removes(
    elastic: Elastic, es_node: EsNode, token: str, tmp_path: Path
) -> None:
    add_events(elastic, cloudtrail_index(token), busy_range())
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = rule_file(tmp_path / "old", [cloudtrail_index(token)])
    new = tmp_path / "new" / old.name
    # A 1-day history: what was last seen 2 days before alerts now.
    new.write_text(old.read_text().replace('"now-7d"', '"now-1d"'), encoding="utf-8")
    assert new.read_text() != old.read_text()
    env = {"DETECTOR_BUILTIN_RULES": "false"}
    args = ("rules", "diff", str(old), str(new), "--start", iso(T0), "--end", iso(END))

    text = detector(es_node, env, *args)
    listed = detector(es_node, env, *args, "--json")

    assert text.returncode == 0, text.stderr
    assert listed.returncode == 0, listed.stderr
    changes = [json.loads(line) for line in listed.stdout.splitlines()]
    assert ("added", ["198.51.100.1"]) in [(c["change"], c["new_terms"]) for c in changes]
    assert all(c["change"] == "added" for c in changes)
    assert "+ " in text.stdout and "198.51.100.1" in text.stdout
    assert "0 removed" in text.stdout


def test_alerts_already_written_are_not_previewed_again_as_a_backfill_skips_them(
    elastic: Elastic, token: str, make_runner: MakeRunner, tmp_path: Path
) -> None:
    rule = token_rule(token, max_signals=2)
    exceptions, _ = exceptions_for(tmp_path)
    add_events(elastic, cloudtrail_index(token), busy_range())
    runner = make_runner("live", exceptions=exceptions)
    runner.backfill([rule], T0, minutes(90))  # what live executions wrote already
    before = set(alerts_of(runner).values())
    index = runner.store.index  # type: ignore[attr-defined]

    found = preview(elastic, rule, T0, END, exceptions=exceptions, alerts_index=index)
    fresh = preview(elastic, rule, T0, END, exceptions=exceptions)

    runner.backfill([rule], T0, END)
    added = set(alerts_of(runner).values()) - before
    assert before and added
    assert previewed(found) == added
    # The alerts already there left room within max_signals: the fifth of the burst is
    # alerted now, which a preview from a clean slate (and a backfill on one) loses.
    assert (("192.0.2.5",), "2025-01-15T12:33:30.000Z") in previewed(found)
    assert not any(alert.values == ("192.0.2.5",) for alert in fresh.alerts)
