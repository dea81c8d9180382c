"""`detector demo`: load the CloudTrail story, replay the last hour's executions, show the alerts.

1. the demo index `logs-aws.cloudtrail-detectordemo` (a namespace of its own) is created from
   the demo template, which matches that one name only, or its tagged documents are replaced,
   with `detector.deployment.scenario.scenario(end)`; documents it did not write are never
   deleted, an index of that name it did not create is never touched, and a cluster whose
   CloudTrail indices hold data it did not write is refused unless forced;
2. every scheduled execution of the built-in rules over the last hour (`end` is the current
   time rounded down to the rule interval) runs oldest first, each once the events ingested by
   its time are loaded, as a live cluster would have held them (so none lies in its future):
   alerts to the alerts index, executions to the execution log as the demo's scheduled ones
   (`replica.id` `detector-demo`), which `status` and `health` show. The demo moves no
   checkpoint and takes no lease; when the execution log already holds scheduled executions of
   these rules by someone else (a deployment), it records its own as `manual` (a backfill), so
   it never stands in for that deployment's state;
3. the alerts of the demo's sources are read back and printed as a table.

Run twice, it creates no duplicate: alert ids are deterministic and the store drops a term that
already has an alert in the same episode, so the second run shows the same alerts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from detector.alerts.store import AlertStore
from detector.cloudtrail import template
from detector.datemath import parse_interval
from detector.deployment import scenario
from detector.errors import DemoError, RequestError
from detector.es.client import Elastic
from detector.execution_log.documents import EXECUTION, MANUAL, SCHEDULED
from detector.execution_log.store import ExecutionStore
from detector.results import ExecutionResult
from detector.rules import Rule, builtin_rules
from detector.rules.exceptions import from_settings
from detector.schedule import catchup
from detector.service import runner
from detector.settings import Settings
from detector.times import parse_iso

REPLAY = timedelta(hours=1)
BATCH = 500
# The demo's documents: each carries its tag (`demo_data`), so it deletes only its own.
OWN_DOCUMENTS: dict[str, Any] = {"term": {"tags": scenario.DEMO_MARKER}}
# Who ran the demo's executions (`replica.id` in the execution log, the `by` of `status`).
DEMO_REPLICA = "detector-demo"


class Progress:
    """One rewritten status line on a terminal, plain lines otherwise (logs, CI, pipes)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()

    def step(self, text: str, done: int = 0, total: int = 0) -> None:
        """Report progress; on a terminal the same line is redrawn until `finish`."""
        if not self.live:
            if done in (0, total):
                self.stream.write(f"{text}{f' ({total})' if total else ''}\n")
            return
        bar = ""
        if total:
            filled = round(20 * done / total)
            bar = f" [{'#' * filled}{'.' * (20 - filled)}] {done}/{total}"
        self.stream.write(f"\r\033[K{text}{bar}")
        self.stream.flush()

    def finish(self) -> None:
        """End the current line."""
        if self.live:
            self.stream.write("\n")


@dataclass(frozen=True)
class DemoResult:
    """What the demo did."""

    end: datetime
    documents: int
    executions: list[ExecutionResult]
    alerts: list[dict[str, Any]]
    # `scheduled`, or `manual` when a deployment's executions of the rules were in the log.
    execution_type: str = SCHEDULED

    @property
    def failed(self) -> list[ExecutionResult]:
        """The executions that failed."""
        return [result for result in self.executions if not result.succeeded]


def demo_rules() -> list[Rule]:
    """The enabled built-in rules that read the demo index."""
    return [rule for rule in builtin_rules() if rule.enabled]


def run(
    settings: Settings,
    now: datetime | None = None,
    progress: Progress | None = None,
    index: str = scenario.INDEX,
    *,
    force: bool = False,
) -> DemoResult:
    """Load the story and replay the last hour; raises `DetectorError` on failures.

    Refuses (`DemoError`) a cluster whose CloudTrail indices hold documents the demo did not
    write, unless `force`: the rules there would read the made-up events and alert on them
    beside the real ones.
    """
    progress = progress or Progress()
    rules = demo_rules()
    end = _align(now or datetime.now(UTC), rules)
    plan = sorted(catchup.backfill_plan(rules, end - REPLAY + _step(rules), end), key=_at)
    docs = scenario.scenario(end)
    first = [doc for doc in docs if _ingested(doc) <= plan[0][1]]
    later = [doc for doc in docs if _ingested(doc) > plan[0][1]]
    with Elastic(settings) as elastic:
        elastic.wait_ready()
        _check_index_is_ours(elastic, index)
        if not force:
            _check_no_real_data(elastic, rules)
        load(elastic, first, progress, index)
        replayer, kind = _replayer(elastic, settings, rules)
        results = replay(replayer, plan, later, kind, progress, index)
        elastic.refresh(settings.alerts_index)
        alerts = demo_alerts(elastic, settings.alerts_index, rules)
    return DemoResult(end, len(docs), results, alerts, kind)


def _step(rules: Sequence[Rule]) -> timedelta:
    return min((parse_interval(rule.interval) for rule in rules), default=timedelta(minutes=5))


def _align(moment: datetime, rules: Sequence[Rule]) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment - (moment - epoch) % _step(rules)


def _at(item: tuple[Rule, datetime]) -> datetime:
    return item[1]


def _ingested(doc: dict[str, Any]) -> datetime:
    moment = parse_iso(doc["event"]["ingested"])
    assert moment is not None  # the scenario stamps every document
    return moment


def load(
    elastic: Elastic,
    docs: Sequence[dict[str, Any]],
    progress: Progress,
    index: str = scenario.INDEX,
) -> int:
    """Replace the demo's own documents in its index by `docs`; returns how many.

    Only documents tagged by the demo are deleted: anything else in the index stays.
    """
    _check_index_is_ours(elastic, index)
    marked = template.index_template(index, {"managed_by": scenario.DEMO_MARKER})
    elastic.put_index_template(scenario.template_name(index), marked)
    if not elastic.create_index(index):
        _delete_own_documents(elastic, index)
    for start in range(0, len(docs), BATCH):
        _add(elastic, index, docs[start : start + BATCH])
        progress.step(
            "loading the CloudTrail events ingested before the last hour",
            min(start + BATCH, len(docs)),
            len(docs),
        )
    progress.finish()
    elastic.refresh(index)
    return len(docs)


def _add(elastic: Elastic, index: str, docs: Sequence[dict[str, Any]]) -> None:
    elastic.bulk_create(index, {doc["event"]["id"]: doc for doc in docs}, refresh=False)


def _delete_own_documents(elastic: Elastic, index: str) -> None:
    """The demo's earlier events, found by their tag, page after page (no `_delete_by_query`:
    the reindex module is not on every node)."""
    body = {"size": 1000, "_source": False, "query": OWN_DOCUMENTS}
    while ids := [hit["_id"] for hit in elastic.search([index], body)["hits"]["hits"]]:
        elastic.delete_documents(index, ids)


def _check_no_real_data(elastic: Elastic, rules: Sequence[Rule]) -> None:
    patterns = sorted({pattern for rule in rules for pattern in rule.index})
    foreign = elastic.count(patterns, {"bool": {"must_not": [OWN_DOCUMENTS]}})
    if foreign:
        raise DemoError(
            f"this cluster holds {foreign} CloudTrail document(s) the demo did not write (in "
            f"{', '.join(patterns)}): the rules would read the demo's made-up events beside them "
            "and alert on both. Run the demo on a scratch cluster (scripts/local-es start), or "
            "pass --force to run it here anyway"
        )


def _check_index_is_ours(elastic: Elastic, index: str) -> None:
    try:
        resolved = elastic.resolve_index(index, expand_wildcards="all")
    except RequestError as error:
        if error.status == 404:
            return
        raise
    if resolved.get("data_streams") or resolved.get("aliases"):
        raise DemoError(f"{index} is a data stream or alias with real data; not touching it")
    if not resolved.get("indices"):
        return
    mapping = elastic.get_mapping(index)
    first: dict[str, Any] = next(iter(mapping.values()), {})
    meta = first.get("mappings", {}).get("_meta", {})
    if meta.get("managed_by") != scenario.DEMO_MARKER:
        raise DemoError(
            f"the index {index} exists and was not created by the demo; "
            "run the demo against a scratch cluster (e.g. scripts/local-es)"
        )


def _replayer(
    elastic: Elastic, settings: Settings, rules: Sequence[Rule]
) -> tuple[runner.Runner, str]:
    """The runner of the demo's executions (its indices created), and their execution type."""
    store = AlertStore(elastic, settings.alerts_index)
    store.ensure_index()
    log = ExecutionStore(elastic, settings.execution_log_index)
    log.ensure_index()
    kind = MANUAL if _deployed(elastic, log, rules) else SCHEDULED
    exceptions = from_settings(settings)
    replayer = runner.Runner.on(elastic, store, log, exceptions=exceptions, replica_id=DEMO_REPLICA)
    return replayer, kind


def _deployed(elastic: Elastic, log: ExecutionStore, rules: Sequence[Rule]) -> bool:
    """Whether the execution log holds scheduled executions of these rules the demo did not
    run: a deployment's, which `health` and `status` must go on showing."""
    log.refresh()
    query = {
        "bool": {
            "filter": [
                {"term": {"kind": EXECUTION}},
                {"term": {"execution.type": SCHEDULED}},
                {"terms": {"rule.id": [rule.rule_id for rule in rules]}},
            ],
            "must_not": [{"term": {"replica.id": DEMO_REPLICA}}],
        }
    }
    return elastic.count([log.index], query) > 0


def replay(
    replayer: runner.Runner,
    plan: Sequence[tuple[Rule, datetime]],
    arriving: Sequence[dict[str, Any]],
    execution_type: str,
    progress: Progress,
    index: str = scenario.INDEX,
) -> list[ExecutionResult]:
    """Each execution of `plan` (oldest first) once the documents of `arriving` ingested by its
    time are loaded; each one is recorded in the execution log as `execution_type`. Neither
    checkpoint nor lease is moved: the demo is not the rules' schedule."""
    waiting = sorted(arriving, key=_ingested)
    results = []
    text = (
        f"running the scheduled executions of the last hour, its {len(waiting)} CloudTrail "
        "events arriving as they were ingested"
    )
    for rule, now in plan:
        due = [doc for doc in waiting if _ingested(doc) <= now]
        if due:
            _add(replayer.elastic, index, due)
            replayer.elastic.refresh(index)
            waiting = waiting[len(due) :]
        results.append(replayer.execute(rule, now, execution_type))
        progress.step(text, len(results), len(plan))
    progress.finish()
    return results


def demo_alerts(elastic: Elastic, index: str, rules: Sequence[Rule]) -> list[dict[str, Any]]:
    """The latest alert of each demo source by the demo's rules, oldest first seen first."""
    body = {
        "size": 100,
        "query": {
            "bool": {
                "filter": [
                    {"terms": {"kibana.alert.rule.rule_id": [rule.rule_id for rule in rules]}},
                    {"terms": {"source.address": scenario.demo_addresses()}},
                ]
            }
        },
        "sort": [{"detector.first_seen": "desc"}],
    }
    hits = elastic.search([index], body)["hits"]["hits"]
    latest: dict[str, dict[str, Any]] = {}
    for hit in hits:
        latest.setdefault(hit["_source"]["detector"]["term_key"], hit["_source"])
    return sorted(latest.values(), key=lambda alert: str(alert["detector"]["first_seen"]))
