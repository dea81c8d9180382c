"""The delivery state of each alert, kept in the alert itself, and the searches over it. Pure.

`detector.notifications.<channel>` holds `status` (`pending`, `sent`, `failed`), `attempts`,
`last_error`, `updated_at` and `sent_at`. The pending marks are written in the same `create` as
the alert (`detector.notify.marks`), so an alert is never written without them and an alert
that already existed never gets them: only alerts an execution *created* are notified.
Channel names are user-chosen, so the alerts template maps these fields with dynamic templates
(`detector.notifications.*.status` a keyword, `*_at` dates, ...), and Kibana sees an ordinary
object per channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from detector.errors import shorten
from detector.times import iso

PENDING, SENT, FAILED = "pending", "sent", "failed"
UNSENT = (PENDING, FAILED)
FIELD = "detector.notifications"
# Characters of a delivery error kept in the alert and shown by `detector health`.
ERROR_CHARS = 300


@dataclass(frozen=True)
class Pending:
    """An alert that some channel has not received yet, as the search found it."""

    alert_id: str
    source: dict[str, Any]

    def state(self, channel: str) -> Mapping[str, Any]:
        """This channel's delivery state in the alert ({} when it has none)."""
        return channel_state(self.source, channel)

    def unsent(self, channel: str) -> bool:
        """Whether this channel still has to receive the alert."""
        return self.state(channel).get("status") in UNSENT

    @property
    def execution(self) -> str:
        """The execution that created it (`kibana.alert.rule.execution.uuid`)."""
        rule = self.source.get("kibana", {}).get("alert", {}).get("rule", {})
        return str(rule.get("execution", {}).get("uuid", ""))


def channel_state(source: Mapping[str, Any], channel: str) -> Mapping[str, Any]:
    """`detector.notifications.<channel>` of an alert's source ({} when absent)."""
    found = source.get("detector", {}).get("notifications", {}).get(channel, {})
    return found if isinstance(found, Mapping) else {}


def pending_marks(channels: Sequence[str], now: datetime) -> dict[str, Any]:
    """`detector.notifications` of a new alert: pending for each channel that wants it."""
    return {name: {"status": PENDING, "attempts": 0, "updated_at": iso(now)} for name in channels}


def sent_update(channel: str, attempts: int, now: datetime) -> dict[str, Any]:
    """The partial document marking the alert sent to `channel`."""
    state = {"status": SENT, "attempts": attempts, "sent_at": iso(now), "updated_at": iso(now)}
    return {"detector": {"notifications": {channel: state}}}


def failed_update(channel: str, attempts: int, error: str, now: datetime) -> dict[str, Any]:
    """The partial document recording a failed attempt to `channel`."""
    state = {
        "status": FAILED,
        "attempts": attempts,
        "last_error": shorten(error, ERROR_CHARS),
        "updated_at": iso(now),
    }
    return {"detector": {"notifications": {channel: state}}}


def _status_field(channel: str) -> str:
    return f"{FIELD}.{channel}.status"


def pending_query(
    channels: Sequence[str],
    since: datetime,
    rule_ids: Sequence[str] | None,
    size: int,
    after: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Alerts created since `since` that one of `channels` has not received, oldest first."""
    filters: list[dict[str, Any]] = [
        {"range": {"@timestamp": {"gte": iso(since), "format": "strict_date_optional_time"}}}
    ]
    if rule_ids is not None:
        filters.append({"terms": {"kibana.alert.rule.rule_id": list(rule_ids)}})
    body: dict[str, Any] = {
        "size": size,
        "query": {
            "bool": {
                "filter": filters,
                "should": [{"terms": {_status_field(name): list(UNSENT)}} for name in channels],
                "minimum_should_match": 1,
            }
        },
        "sort": [{"@timestamp": "asc"}, {"kibana.alert.uuid": "asc"}],
        "_source": True,
    }
    if after is not None:
        body["search_after"] = list(after)
    return body


def pending_hits(response: Mapping[str, Any]) -> tuple[list[Pending], list[Any] | None]:
    """The alerts of a `pending_query` answer, and the sort values to search after."""
    hits = response.get("hits", {}).get("hits", [])
    found = [Pending(str(hit["_id"]), dict(hit.get("_source") or {})) for hit in hits]
    return found, (list(hits[-1]["sort"]) if hits else None)


def failing_query(channels: Sequence[str], since: datetime) -> dict[str, Any]:
    """Per channel: how many alerts since `since` it failed to receive, and the latest error."""
    aggs = {
        name: {
            "filter": {"term": {_status_field(name): FAILED}},
            "aggs": {
                "latest": {
                    "top_hits": {
                        "size": 1,
                        "sort": [
                            {
                                f"{FIELD}.{name}.updated_at": {
                                    "order": "desc",
                                    "unmapped_type": "date",
                                }
                            }
                        ],
                        "_source": [f"{FIELD}.{name}"],
                    }
                }
            },
        }
        for name in channels
    }
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {
            "range": {"@timestamp": {"gte": iso(since), "format": "strict_date_optional_time"}}
        },
        "aggs": aggs,
    }


@dataclass(frozen=True)
class Failing:
    """A channel that has alerts it failed to receive."""

    channel: str
    alerts: int
    last_error: str
    updated_at: str

    def __str__(self) -> str:
        return (
            f"notification channel {self.channel}: {self.alerts} alert(s) not delivered; "
            f"last attempt at {self.updated_at} failed: {self.last_error}"
        )


def failing_channels(response: Mapping[str, Any], channels: Sequence[str]) -> list[Failing]:
    """The channels of a `failing_query` answer with at least one failed alert."""
    found = []
    aggregations = response.get("aggregations", {})
    for name in channels:
        bucket = aggregations.get(name, {})
        if not bucket.get("doc_count"):
            continue
        hits = bucket.get("latest", {}).get("hits", {}).get("hits", [])
        state = channel_state(hits[0].get("_source", {}), name) if hits else {}
        error = str(state.get("last_error", "unknown error"))
        found.append(
            Failing(name, int(bucket["doc_count"]), error, str(state.get("updated_at", "?")))
        )
    return found
