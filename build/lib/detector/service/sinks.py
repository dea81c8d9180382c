"""Where created alerts go besides the alerts index: the `AlertSink` seam. Pure.

The runner hands every sink the alerts an execution *created* (never those that already
existed, so a rerun, an overlapping window or a backfill sends nothing twice). A sink that fails
raises a `DetectorError`; the runner logs it and the execution stands: detection never waits on
a notification channel.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from detector.logs import structured
from detector.rules import Rule

log = logging.getLogger(__name__)


class AlertSink(Protocol):
    """Receives the alerts one execution created."""

    name: str

    def deliver(self, rule: Rule, alerts: Sequence[Mapping[str, Any]]) -> None:
        """Hand over the created alerts of one execution of `rule` (raises `DetectorError`)."""
        ...


class LogSink:
    """One log line per created alert: its id and reason, for whoever reads the service's log."""

    name = "log"

    def deliver(self, rule: Rule, alerts: Sequence[Mapping[str, Any]]) -> None:
        """Log each alert at INFO with its id, rule and new terms as structured fields."""
        for alert in alerts:
            fields = alert["kibana"]["alert"]
            log.info(
                "alert %s: %s",
                fields["uuid"],
                fields["reason"],
                extra=structured(
                    alert_id=fields["uuid"], rule_id=rule.rule_id, new_terms=fields["new_terms"]
                ),
            )
