"""`detector import cloudtrail`: raw CloudTrail files into Elasticsearch, for offline investigation;
`detector explain`: why one term did or did not alert at one time.

Argument parsing and output only; the work is in `detector.cloudtrail.importer` and
`detector.explain.investigation`. After an import, `detector backfill` over the imported time range
shows
what the rules would have alerted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from detector.cli.common import Bar, Commands, parse_time, select_rules, text, usage_error
from detector.cloudtrail.files import DEFAULT_NAMESPACE, log_files, missing
from detector.errors import ConfigError, DetectorError, ImportRefusedError

if TYPE_CHECKING:
    from detector.cloudtrail.importer import ImportReport
    from detector.settings import Settings

# Lower case, as index names must be; Fleet's namespaces also refuse `-`, a plain index does not.
_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
SHOWN_BAD = 10
# The built-in rule runs every 5 minutes: the suggested backfill covers the events on that grid.
STEP = timedelta(minutes=5)


def namespace(value: str) -> str:
    """A namespace: lower-case letters, digits, `_`, `.`, `-`, at most 100 characters."""
    if not _NAMESPACE.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a namespace (lower-case letters, digits, _ . -, up to 100)"
        )
    return value


def import_cloudtrail(args: argparse.Namespace, settings: Settings) -> int:
    """Import CloudTrail log files; exit 1 when any record was bad."""
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.cloudtrail.importer import import_files
    from detector.es.client import Elastic

    paths = [Path(path) for path in args.paths]
    absent = missing(paths)
    if absent:
        return usage_error(f"no such file or directory: {', '.join(map(str, absent))}")
    if not log_files(paths):
        return usage_error("no CloudTrail log file (*.json, *.json.gz, *.ndjson) in the paths")
    bar = Bar(sys.stderr, "import")
    with Elastic(settings) as elastic:
        elastic.wait_ready()
        try:
            report = import_files(
                elastic,
                paths,
                args.namespace,
                progress=lambda done, total, records: bar.show(done, total, f"{records} record(s)"),
            )
        except ImportRefusedError as refused:
            return usage_error(str(refused))
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        _summary(report)
    return 1 if report.bad else 0


def _summary(report: ImportReport) -> None:
    state = "created" if report.index_created else "existing"
    if not report.index_ours:
        state = "existing, not created by the detector: documents only added"
    print(
        f"imported {report.files} file(s) into {report.index} ({state}): "
        f"{report.records} record(s), {report.created} created, {report.existing} already there, "
        f"{len(report.bad)} bad, in {report.seconds:.1f} s"
    )
    for skipped in report.skipped:
        print(f"  skipped {skipped.file}: {skipped.reason}")
    if report.bad:
        print(f"bad records (first {min(len(report.bad), SHOWN_BAD)} of {len(report.bad)}):")
        for bad in report.bad[:SHOWN_BAD]:
            print(f"  {bad}")
    if report.first is not None and report.last is not None:
        start, end = backfill_range(report.first, report.last)
        print(f"events from {text(report.first)} to {text(report.last)}; to see the alerts:")
        print(f"  detector backfill --start {text(start)} --end {text(end)}")


def backfill_range(first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """A backfill range whose 5-minute grid has an execution at or after every event (the
    rule's window then holds it), ending no later than now."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    start = first - (first - epoch) % STEP
    steps = -(-(last - start) // STEP)  # ceiling division
    end = min(start + steps * STEP, datetime.now(UTC).replace(microsecond=0))
    return start, end


def explain(args: argparse.Namespace, settings: Settings) -> int:
    """Print why the term did or did not alert at `--at`; exit 1 when Elasticsearch fails."""
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.alerts.store import AlertStore
    from detector.es.client import Elastic
    from detector.explain.investigation import explain as explain_term
    from detector.rules.exceptions import from_settings

    try:
        (rule,), _ = select_rules([args.rule], settings)
        exceptions = from_settings(settings)
    except ConfigError as exc:
        return usage_error("; ".join(exc.problems))
    if len(args.values) != len(rule.new_terms_fields):
        return usage_error(
            f"rule {rule.rule_id} has {len(rule.new_terms_fields)} new-terms field(s) "
            f"({', '.join(rule.new_terms_fields)}): give one VALUE for each, in that order"
        )
    at = args.at or datetime.now(UTC)
    with Elastic(settings) as elastic:
        elastic.wait_ready()
        store = AlertStore(elastic, settings.alerts_index)
        try:
            found = explain_term(
                elastic,
                store,
                rule,
                at,
                tuple(args.values),
                exceptions=exceptions,
                baseline_mode=settings.baseline,
            )
        except DetectorError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(found.to_json()) if args.json else "\n".join(found.lines()))
    return 0


def add_commands(commands: Commands) -> None:
    """Register `import cloudtrail` and `explain`."""
    _add_explain(commands)
    parser = commands.add_parser(
        "import",
        help="import raw logs into Elasticsearch for an offline investigation",
        description="Import log files you hold (for example CloudTrail files copied from S3) "
        "as the Elastic integration would have indexed them, to run the rules over them with "
        "`detector backfill`.",
    )
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    cloudtrail = sources.add_parser(
        "cloudtrail",
        help="CloudTrail log files (.json, .json.gz, NDJSON) into logs-aws.cloudtrail-NAMESPACE",
        description="Map raw CloudTrail records to ECS as Elastic's aws.cloudtrail integration "
        "does and index them with _id = eventID (importing again adds nothing); then run "
        "`detector backfill` over the imported time range.",
    )
    cloudtrail.add_argument(
        "paths", nargs="+", metavar="PATH", help="log files or directories (walked recursively)"
    )
    cloudtrail.add_argument(
        "--namespace",
        type=namespace,
        default=DEFAULT_NAMESPACE,
        help=f"index logs-aws.cloudtrail-NAMESPACE (default: {DEFAULT_NAMESPACE})",
    )
    cloudtrail.add_argument("--json", action="store_true", help="print the summary as JSON")
    cloudtrail.set_defaults(handler=import_cloudtrail)


def _add_explain(commands: Commands) -> None:
    parser = commands.add_parser(
        "explain",
        help="why one term did or did not alert at a time",
        description="For one value (or one value per field, in the rule's new_terms_fields "
        "order): its documents in the window at --at, its newest document in the history, the "
        "exceptions that removed documents of it, the alert of its episode, whether it was "
        "beyond max_signals, and the baseline coverage; and whether it is new then.",
    )
    parser.add_argument("values", nargs="+", metavar="VALUE", help="the term's value(s)")
    parser.add_argument("--rule", required=True, metavar="ID", help="rule id (or rule file)")
    parser.add_argument(
        "--at",
        type=parse_time,
        default=None,
        metavar="ISO8601",
        help="the execution time to explain (UTC unless an offset is given; default: now)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=explain)
