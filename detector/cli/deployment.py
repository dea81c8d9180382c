"""`detector setup` and `demo`: installing the detector, and trying it on made-up data.

Argument parsing and output only; the work is in `detector.deployment.provision` and
`detector.deployment.demo`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.cli.common import Commands, duration, executions_at_debug, usage_error

if TYPE_CHECKING:
    from detector.es.client import Elastic
    from detector.settings import Settings

REASON_WIDTH = 100


def add_commands(commands: Commands) -> None:
    """Register `demo` and `setup`."""
    demo = commands.add_parser(
        "demo",
        help="load a CloudTrail scenario, run the last hour's executions, show the alerts",
        description="Write made-up CloudTrail events (eight days up to now) into "
        "logs-aws.cloudtrail-detectordemo, with an index template for that index only (its "
        "earlier events are replaced, nothing else is deleted), replay the last hour's "
        "scheduled executions "
        "of the built-in rule, writing alerts to DETECTOR_ALERTS_INDEX and the execution log "
        "to DETECTOR_EXECUTION_LOG_INDEX, and print the alerts. Meant for a scratch cluster: "
        "it refuses one that holds CloudTrail data it did not write, unless --force.",
    )
    demo.add_argument(
        "--force",
        action="store_true",
        help="run even though the cluster holds CloudTrail data the demo did not write (the "
        "rules would then read the demo's made-up events beside the real ones)",
    )
    demo.set_defaults(handler=_demo)
    setup = commands.add_parser(
        "setup",
        help="install the index templates, the detector's role and API key, Kibana objects",
        description="Put the index templates and create the alerts and execution-log indices; "
        "optionally create the detector's role and an API key limited to it, and import the "
        "Kibana saved objects (data views, saved search, dashboard).",
    )
    setup.add_argument(
        "--kibana-url",
        default=None,
        metavar="URL",
        help="Kibana to import the saved objects into (default: DETECTOR_KIBANA_URL; "
        "skipped when neither is set)",
    )
    setup.add_argument(
        "--create-role", action="store_true", help="create or update the detector's role"
    )
    setup.add_argument(
        "--api-key",
        action="store_true",
        help="create an API key limited to that role and print DETECTOR_ES_API_KEY=...",
    )
    setup.add_argument(
        "--env-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="with --api-key: write DETECTOR_ES_API_KEY to this file instead of printing it, "
        "and keep the key already there if it still works",
    )
    setup.add_argument(
        "--kibana-wait",
        type=duration,
        default=timedelta(minutes=5),
        metavar="DURATION",
        help="how long to wait for Kibana to be available, e.g. 90s or 10m (default: 5m)",
    )
    setup.set_defaults(handler=_setup)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.deployment import demo, scenario

    print(
        f"The demo writes made-up CloudTrail events into {scenario.INDEX} (index template "
        f"{scenario.template_name()}, for that index only), alerts into "
        f"{settings.alerts_index} and its executions into {settings.execution_log_index}.",
        file=sys.stderr,
    )
    with executions_at_debug():  # one line per execution would drown the progress line
        result = demo.run(settings, force=args.force)
    alerted = sum(r.alerts_written for r in result.executions)
    kind = "scheduled" if result.execution_type == "scheduled" else "manual (backfill)"
    print(
        f"\nLoaded {result.documents} CloudTrail events into {scenario.INDEX} (8 days up "
        f"to {result.end:%Y-%m-%d %H:%M} UTC); ran {len(result.executions)} {kind} "
        f"execution(s): {alerted} new alert(s) written to {settings.alerts_index}.\n"
    )
    for failure in result.failed:
        print(f"FAILED: {failure.summary()}", file=sys.stderr)
    print(alert_table(result.alerts) if result.alerts else "No alerts.")
    print(_next_steps(settings))
    return 1 if result.failed else 0


def alert_table(alerts: Sequence[dict[str, Any]]) -> str:
    """The alerts as an aligned table: source, bucket, object, actions, first seen, reason."""
    header = ["SOURCE", "BUCKET", "OBJECT", "ACTIONS", "FIRST SEEN (UTC)"]
    rows = [header, *([*_row(alert)] for alert in alerts)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = []
    for number, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if number:
            lines.append(f"    reason: {_reason(alerts[number - 1])}")
    return "\n".join(line.rstrip() for line in lines)


def _row(alert: dict[str, Any]) -> list[str]:
    detector = alert.get("detector", {})
    s3 = detector.get("s3", {})
    obj = s3.get("object_key") or (f"{s3['prefix']}*" if s3.get("prefix") else "-")
    count = detector.get("event_count", 1)
    actions = ", ".join(detector.get("actions", [])) + (f" ({count} events)" if count > 1 else "")
    first_seen = str(detector.get("first_seen", ""))[:19].replace("T", " ")
    source = ", ".join(str(v) for v in alert["kibana"]["alert"].get("new_terms", []))
    return [source, s3.get("bucket", "-"), obj, actions or "-", first_seen]


def _reason(alert: dict[str, Any]) -> str:
    reason = str(alert["kibana"]["alert"].get("reason", ""))
    return reason if len(reason) <= REASON_WIDTH * 2 else reason[: REASON_WIDTH * 2 - 3] + "..."


def _next_steps(settings: Settings) -> str:
    return f"""
Where to look next:
  - Kibana: a data view on `{settings.alerts_index}` (time field @timestamp), or run
    `detector setup --kibana-url http://localhost:5601` to import the data views, the saved
    search and the dashboard (docker compose up does it for you).
  - `detector once --dry-run` runs the rules once now and prints what they would alert;
    `detector run` keeps running them every 5 minutes.
  - README.md (how it works, configuration) and docs/.
Elasticsearch is still running; stop it with `scripts/local-es stop`."""


def _api_key(elastic: Elastic, settings: Settings, args: argparse.Namespace) -> None:
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.deployment import provision

    descriptor = provision.role_descriptor(settings)
    existing = provision.key_in_file(args.env_file) if args.env_file else None
    if existing and provision.key_works(settings, existing):
        print(f"API key: kept the working key in {args.env_file}")
        return
    key = provision.create_api_key(elastic, descriptor)
    if args.env_file:
        provision.write_env_file(args.env_file, key)
        print(f"API key: created, written to {args.env_file} as {provision.ENV_KEY}")
    else:
        print(f"{provision.ENV_KEY}={key}")


def _setup(args: argparse.Namespace, settings: Settings) -> int:
    """`detector setup`: every requested step, in order; the first failure stops it (exit 1)."""
    if args.env_file is not None and not args.api_key:
        return usage_error("--env-file is where --api-key writes the key: give --api-key too")
    # lazy: start-up (`--help` and `rules check` need no Elasticsearch client)
    from detector.alerts import promotion
    from detector.deployment import kibana, provision
    from detector.es.client import Elastic

    kibana_url = args.kibana_url or settings.kibana_url
    with Elastic(settings) as elastic:
        elastic.wait_ready()
        installed = provision.install_templates(elastic, settings)
        print(f"index templates and indices: {', '.join(installed)}")
        index = settings.alerts_index
        print(f"alerts index {index}: {promotion.promotion_line(index)}")
        if args.create_role:
            provision.create_role(elastic, provision.role_descriptor(settings))
            print(f"role: {provision.ROLE_NAME} created or updated")
        if args.api_key:
            _api_key(elastic, settings, args)
    if kibana_url:
        result = kibana.import_saved_objects(settings, kibana_url, args.kibana_wait.total_seconds())
        print(f"Kibana: imported {result.success_count} saved object(s) into {kibana_url}")
    else:
        print("Kibana: skipped (no --kibana-url or DETECTOR_KIBANA_URL)", file=sys.stderr)
    return 0
