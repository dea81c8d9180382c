"""`detector notify check` and `detector notify test CHANNEL`: the notification channels.

`check` validates `DETECTOR_NOTIFY_URLS` and `DETECTOR_NOTIFICATIONS_FILE` without sending
anything (every problem on its own line, naming the file and entry, exit 2); `test` sends one
test message to a channel (exit 1 when it does not take it). URLs are never printed.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from detector.cli.common import Commands

if TYPE_CHECKING:
    from detector.notify.routing import Route, Routing
    from detector.settings import Settings


def _routing(settings: Settings) -> Routing:
    from detector.notify.notifier import validated  # lazy: start-up (apprise is slow)

    return validated(settings)


def check(args: argparse.Namespace, settings: Settings) -> int:
    """List the channels and their routes; exit 2 on any problem (raised as `ConfigError`)."""
    routing = _routing(settings)
    if not routing:
        print(
            "no notification channel configured (DETECTOR_NOTIFY_URLS, DETECTOR_NOTIFICATIONS_FILE)"
        )
        return 0
    for channel in routing.channels:
        digest = f", digest above {channel.digest_threshold}" if channel.digest_threshold else ""
        signed = ", signed" if channel.secret else ""
        kind = f"{channel.kind}{digest}{signed}"
        print(f"channel {channel.name}: {channel.masked} ({kind}) from {channel.origin}")
    for number, route in enumerate(routing.routes, start=1):
        print(f"route {number}: {_describe(route)}")
    print(f"ok: {len(routing.channels)} channel(s), {len(routing.routes)} route(s)")
    return 0


def _describe(route: Route) -> str:
    wants = [f"rule_ids {sorted(route.rule_ids)}" if route.rule_ids else ""]
    wants.append(f"tags {sorted(route.tags)}" if route.tags else "")
    wants.append(f"severity >= {route.min_severity}" if route.min_severity else "")
    filters = " and ".join(part for part in wants if part) or "every alert"
    return f"{filters} -> {', '.join(route.channels)}"


def test(args: argparse.Namespace, settings: Settings) -> int:
    """Send a test message to one channel."""
    from detector.errors import NotifyError
    from detector.notify.senders import Sender

    routing = _routing(settings)
    channel = routing.by_name.get(args.channel)
    if channel is None:
        known = ", ".join(sorted(routing.by_name)) or "none configured"
        print(f"error: no channel {args.channel!r} (channels: {known})", file=sys.stderr)
        return 2
    try:
        Sender(channel, settings.kibana_public_url, settings.notify_retry_attempts).probe()
    except NotifyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"sent a test message to {channel}")
    return 0


def add_commands(commands: Commands) -> None:
    """Register `notify check` and `notify test`."""
    notify = commands.add_parser(
        "notify",
        help="check the notification channels or send a test message",
        description="The notification channels of DETECTOR_NOTIFY_URLS and "
        "DETECTOR_NOTIFICATIONS_FILE (see the README's Notifications section).",
    )
    actions = notify.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    checking = actions.add_parser(
        "check",
        help="validate the channels and routes (exit 2 naming each problem)",
        description="Validate the notification settings and routing file without sending: "
        "every problem is named with its file and entry (exit 2). URLs are never shown.",
    )
    checking.set_defaults(handler=check)
    probe = actions.add_parser(
        "test",
        help="send a test message to one channel",
        description="Send one test message to CHANNEL (a name from `detector notify check`); "
        "exit 1 when the channel does not take it.",
    )
    probe.add_argument("channel", metavar="CHANNEL", help="the channel's name")
    probe.set_defaults(handler=test)
