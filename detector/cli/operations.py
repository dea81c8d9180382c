"""`detector check`, `health` and `status`: is the detector connected, allowed and keeping up,
and which replica holds which rule."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from detector.cli.common import (
    NO_RULES,
    Commands,
    duration,
    positive_duration,
    select_rules,
    validate_startup,
)
from detector.cli.remotes import check_remotes
from detector.query.clusters import with_remotes

if TYPE_CHECKING:
    from detector.es.client import Elastic
    from detector.rules import Rule
    from detector.settings import Settings


def check(args: argparse.Namespace, settings: Settings) -> int:
    """Validate what `run` validates, then connect, print the cluster, and say which rule index
    patterns match anything."""
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.es.client import Elastic

    startup = validate_startup(settings)  # a configuration error exits 2, as `run` does
    enabled, problems = startup.rules, startup.problems
    if not enabled:
        print(f"error: {NO_RULES}: `detector run` would exit 1")
    patterns = index_patterns(enabled)
    searched = list(with_remotes(patterns, settings.remote_clusters))
    wait = None if args.wait is None else args.wait.total_seconds()
    with Elastic(settings) as elastic:
        info = elastic.wait_ready(wait)
        print(f"connected to {', '.join(settings.es_url)}")
        print(f"cluster: {info.name}  version: {info.version}")
        remotes = check_remotes(elastic, searched)
        for pattern in searched:
            print(f"  {pattern}: {_matching(elastic, pattern)}")
        # A remote checks the privileges of its own indices (the role resolved there).
        unreadable = elastic.unreadable(patterns)
        misnested = [line for rule in enabled for line in _nesting(elastic, rule)]
        notes = [line for rule in enabled for line in _mapping_notes(elastic, rule)]
        unaggregatable = [line for rule in enabled for line in _text_fields(elastic, rule)]
        misplaced = _alerts_index(elastic, settings, enabled)
    for line in notes:
        print(f"warning: {line}")
    for line in misnested + unaggregatable + misplaced + remotes:
        print(f"error: {line}")
    if unreadable is None:
        print("read privileges: not checked (security is off or the API is not available)")
    for pattern in unreadable or ():
        print(f"error: no read privilege on {pattern}: searches would silently leave it out")
    failed = unreadable or misnested or unaggregatable or misplaced or remotes or not enabled
    return max(problems, 1 if failed else 0)


def _matching(elastic: Elastic, pattern: str) -> str:
    from detector.errors import ElasticsearchError  # lazy: start-up

    try:
        names = elastic.matching_indices(pattern)
    except ElasticsearchError as exc:
        return f"not resolved ({exc})"
    return f"{len(names)} index(es)" if names else "no index yet"


def _alerts_index(elastic: Elastic, settings: Settings, enabled: list[Rule]) -> list[str]:
    """Print what the alerts index is and who reads it; the errors (it must be a plain index)."""
    from detector.alerts import promotion  # lazy: start-up

    index = settings.alerts_index
    kind = _index_kind(elastic, index)
    print(f"alerts index {index}: {kind}")
    print(f"  {promotion.promotion_line(index)}")
    for line in promotion.rules_reading(enabled, index):
        print(f"warning: {line}")
    if kind != "a data stream":
        return []
    # A data stream comes from another template (e.g. Elastic's `logs-*-*`): alert ids would
    # deduplicate only within one backing index, and the detector's mappings do not apply.
    return [
        f"the alerts index {index} is a data stream, not the detector's plain index: choose "
        "another DETECTOR_ALERTS_INDEX (the detector never deletes what it did not create)"
    ]


def _index_kind(elastic: Elastic, index: str) -> str:
    from detector.errors import RequestError  # lazy: start-up

    try:
        # A wildcard: a missing concrete name would be a 404.
        resolved = elastic.resolve_index(f"{index}*", expand_wildcards="all")
    except RequestError as exc:  # e.g. 403: no view_index_metadata on it
        return f"cannot be looked at ({exc})"
    if any(item["name"] == index for item in resolved.get("data_streams", [])):
        return "a data stream"
    if any(item["name"] == index for item in resolved.get("indices", [])):
        return "an index"
    return "not created yet (`detector setup` or the first run creates it)"


def _nesting(elastic: Elastic, rule: Rule) -> list[str]:
    """A line per nested path of the rule's query that some index of it does not map as
    `nested`: searching it fails there (`rules check` cannot know, it has no node)."""
    from detector import kql  # lazy: start-up

    paths = kql.nested_paths(kql.to_dsl(rule.query))
    if not paths:
        return []
    # `path.*`: `_field_caps` lists an object or nested field only with its sub-fields.
    indices, types = elastic.field_types(rule.index, [f"{path}.*" for path in paths])
    lines = []
    for path in paths:
        kinds = types.get(path, {})
        other = {kind: names for kind, names in kinds.items() if kind != "nested"}
        unmapped = sorted(set(indices) - {name for names in kinds.values() for name in names})
        if unmapped:
            other["nothing (no such field)"] = unmapped
        for kind, names in other.items():
            lines.append(
                f"rule {rule.rule_id}: its query searches {path} as nested, but "
                f"{', '.join(sorted(names))} map it as {kind}: every search there fails"
            )
    return lines


def _mapping_notes(elastic: Elastic, rule: Rule) -> list[str]:
    """A line when the rule's patterns match no index, and one per new-terms field mapped with
    different types in its indices (the engine searches each type apart, see type_split)."""
    from detector.query.type_groups import FieldTypes, describe  # lazy: start-up

    head = f"rule {rule.rule_id} ({rule.name})"
    indices, types = elastic.field_types(rule.index, rule.new_terms_fields)
    if not indices:
        patterns = ", ".join(rule.index)
        return [f"{head}: its index patterns {patterns} match no index: it searches nothing"]
    found = FieldTypes.of(indices, types)
    return [
        f"{head}: {describe(field, kinds)}: each type is searched apart and IP addresses are "
        "compared in canonical form"
        for field, kinds in found.conflicts(rule.new_terms_fields).items()
    ]


def _text_fields(elastic: Elastic, rule: Rule) -> list[str]:
    """A line per new-terms field some index maps `text`: every execution fails (type_split)."""
    from detector.query.type_groups import FieldTypes, unaggregatable_text  # lazy: start-up

    found = FieldTypes.of(*elastic.field_types(rule.index, rule.new_terms_fields))
    return [
        f"rule {rule.rule_id} ({rule.name}): {unaggregatable_text(field, indices)}"
        for field, indices in found.unaggregatable(rule.new_terms_fields).items()
    ]


def index_patterns(rules: Sequence[Rule]) -> list[str]:
    """The index patterns of these rules, in order, without repeats."""
    return list(dict.fromkeys(pattern for rule in rules for pattern in rule.index))


def health(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when every enabled rule succeeded recently, else 1 with one line per rule."""
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.es.client import Elastic
    from detector.execution_log import health as verdict
    from detector.execution_log.records import health_runs
    from detector.execution_log.store import ExecutionStore

    max_age: timedelta = args.max_age or settings.health_max_age
    rules, problems = select_rules([], settings)
    if not rules:
        print("unhealthy: no enabled rule", file=sys.stderr)
        return 1
    with Elastic(settings) as elastic:
        _refreshed(elastic, settings.execution_log_index)
        log = ExecutionStore(elastic, settings.execution_log_index)
        runs = [health_runs(log, rule, settings.health_max_failures) for rule in rules]
        channels = _failing_channels(elastic, settings)
    required = args.require_data
    now = datetime.now(UTC)
    lines = verdict.problems(
        runs, now, max_age, settings.health_max_failures, require_data=required
    )
    lines += channels
    for line in lines:
        print(f"unhealthy: {line}")
    if not lines and not problems:
        print(f"healthy: {len(rules)} rule(s) succeeded within {max_age.total_seconds():.0f} s")
    # After the verdict: no data yet and a thin baseline are worth knowing, not health problems.
    for note in [] if required else verdict.no_index_notes(runs):
        print(f"note: {note} (yet? --require-data counts it unhealthy)")
    for note in verdict.baseline_notes(runs):
        print(f"note: {note}")
    return 1 if lines else problems


def _failing_channels(elastic: Elastic, settings: Settings) -> list[str]:
    """A line per notification channel with alerts it failed to receive."""
    if settings.notify_urls is None and settings.notifications_file is None:
        return []
    from detector.notify import notifier, routing  # lazy: only with notifications

    _refreshed(elastic, settings.alerts_index)  # the delivery marks of the last pass
    found = notifier.failing(elastic, settings, routing.from_settings(settings))
    return [str(channel) for channel in found]


def status(args: argparse.Namespace, settings: Settings) -> int:
    """Print each enabled rule's lease holder and expiry, last execution and checkpoint."""
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.es.client import Elastic
    from detector.execution_log import status as rule_status

    rules, problems = select_rules([], settings)
    with Elastic(settings) as elastic:
        _refreshed(elastic, settings.execution_log_index)
        found = rule_status.rule_statuses(
            elastic, settings.execution_log_index, rules, datetime.now(UTC)
        )
    if args.json:
        for item in found:
            print(json.dumps(item.to_json()))
    else:
        print(rule_status.table(found))
    return problems


def _refreshed(elastic: Elastic, index: str) -> None:
    """Make every write to `index` searchable before `health` or `status` reads it.

    A search sees what the last refresh made visible; it waits for a pending refresh only on a
    search-idle shard (none searched for 30 s), and `once` itself searches the execution log,
    so `health` right after it read the execution before. Refreshing here, not writing with
    `refresh="wait_for"`: the runner writes several documents an execution (running, final,
    checkpoint, failed windows, reconciled ones; delivery marks in the alerts) and `wait_for`
    would hold each up to a refresh interval (1 s by default, for ever at `-1`) whether anyone
    reads or not, while these commands run now and then and a refresh with nothing new is
    nearly free. The detector's role has `maintenance` (refresh); a user without it reads what
    the last scheduled refresh shows.
    """
    from detector.errors import RequestError  # lazy: start-up

    try:
        elastic.refresh(index)
    except RequestError as exc:
        if exc.status != 403:
            raise


def add_commands(commands: Commands) -> None:
    """Register `check` and `health`."""
    connection = commands.add_parser(
        "check",
        help="check the connection to Elasticsearch",
        description="Validate what `detector run` validates (settings, rules, exceptions, "
        "notification channels: exit 2 on a configuration error), then connect, print the "
        "cluster's name and version and, for each index pattern of the enabled rules, whether "
        "it matches any index; what the alerts index is and whether the index patterns of "
        "Kibana's External Alerts rule match it; exit 1 when these credentials may not read "
        "one of them.",
    )
    connection.add_argument(
        "--wait",
        type=duration,
        default=None,
        metavar="DURATION",
        help="how long to wait for Elasticsearch, e.g. 30s or 2m (default: "
        "DETECTOR_ES_READY_TIMEOUT)",
    )
    connection.set_defaults(handler=check)
    probe = commands.add_parser(
        "health",
        help="exit 0 if every enabled rule succeeded recently (container healthcheck)",
        description="Read the execution log: exit 0 when every enabled rule's last scheduled "
        "execution succeeded within --max-age, else 1 with one line per rule (and per "
        "notification channel that failed to receive alerts). A rule is also unhealthy when "
        "its last DETECTOR_HEALTH_MAX_FAILURES executions failed, it has a failed window not "
        "backfilled, its checkpoint trails the clock by more than two intervals, or its "
        "checkpoint or last execution is ahead of this host's clock (skew). A rule whose index "
        "patterns matched no index is a note, unhealthy with --require-data.",
    )
    probe.add_argument(
        "--max-age",
        type=positive_duration,
        default=None,
        metavar="DURATION",
        help="how recent the last success must be, e.g. 900 or 15m (default: "
        "DETECTOR_HEALTH_MAX_AGE)",
    )
    probe.add_argument(
        "--require-data",
        action="store_true",
        help="a rule whose index patterns matched no index at its last execution is unhealthy "
        "(default: a note, as on a new stack before its first CloudTrail log)",
    )
    probe.set_defaults(handler=health)
    show = commands.add_parser(
        "status",
        help="each rule's lease holder and expiry, last execution and checkpoint",
        description="For each enabled rule: which `detector run` replica holds its lease and "
        "until when, its last scheduled execution and its checkpoint (a table, or --json).",
    )
    show.add_argument("--json", action="store_true", help="print one JSON object per rule")
    show.set_defaults(handler=status)
