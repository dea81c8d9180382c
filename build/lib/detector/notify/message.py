"""The text of the notifications: one alert, a digest of many, a test message. Pure.

Plain text with a title, which every apprise service renders (Slack, Teams, mail, PagerDuty's
summary...). The Discover link opens the alert in the alerts data view that `detector setup`
imports (`detector.deployment.kibana.ALERTS_DATA_VIEW`), around its first-seen time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from detector.times import iso, parse_iso

# The id of the alerts data view in detector/kibana_objects
# (`detector.deployment.kibana.ALERTS_DATA_VIEW`).
ALERTS_DATA_VIEW = "newterms-detector-alerts"
ALERTS_SEARCH = "newterms-detector-alerts-search"
# Alerts listed in a digest message; the rest is counted ("... and N more").
DIGEST_LINES = 50
# Discover's time range around the alert: from before its first event to after its creation.
LINK_MARGIN = timedelta(hours=1)
# Left as they are in the link: rison's syntax, as Kibana itself writes its URL state.
URL_SAFE = ":/=&(),'!"


@dataclass(frozen=True)
class Message:
    """A title and a plain-text body."""

    title: str
    body: str


def _alert(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    found = doc.get("kibana", {}).get("alert", {})
    return found if isinstance(found, Mapping) else {}


def _detector(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    found = doc.get("detector", {})
    return found if isinstance(found, Mapping) else {}


def alert_id(doc: Mapping[str, Any]) -> str:
    """The alert's id (`kibana.alert.uuid`, also its document `_id`)."""
    return str(_alert(doc).get("uuid", ""))


def _source(doc: Mapping[str, Any]) -> str:
    source = doc.get("source", {})
    source = source if isinstance(source, Mapping) else {}
    where = source.get("geo", {}) if isinstance(source.get("geo"), Mapping) else {}
    org = (
        source.get("as", {}).get("organization", {})
        if isinstance(source.get("as"), Mapping)
        else {}
    )
    place = ", ".join(
        str(part)
        for part in (where.get("city_name"), where.get("country_name"), org.get("name"))
        if part
    )
    address = (
        source.get("address")
        or source.get("ip")
        or ", ".join(map(str, _alert(doc).get("new_terms", [])))
    )
    return f"{address} ({place})" if place else str(address or "-")


def _s3(doc: Mapping[str, Any]) -> str:
    s3 = _detector(doc).get("s3", {})
    s3 = s3 if isinstance(s3, Mapping) else {}
    bucket, key = s3.get("bucket"), s3.get("object_key") or s3.get("prefix")
    if bucket is None:
        return "-"
    return f"{bucket}/{key}" if key else str(bucket)


def discover_link(doc: Mapping[str, Any], kibana_url: str) -> str:
    """A link that opens this alert in Kibana Discover (the alerts data view)."""
    first = parse_iso(_detector(doc).get("first_seen")) or parse_iso(doc.get("@timestamp"))
    created = parse_iso(doc.get("@timestamp")) or first
    period = ""
    if first is not None and created is not None:
        period = f"_g=(time:(from:'{iso(first - LINK_MARGIN)}',to:'{iso(created + LINK_MARGIN)}'))&"
    query = _rison_string(f'kibana.alert.uuid:"{alert_id(doc)}"')
    source = f"dataSource:(dataViewId:'{ALERTS_DATA_VIEW}',type:dataView)"
    app = f"_a=({source},query:(language:kuery,query:{query}))"
    return f"{kibana_url.rstrip('/')}/app/discover#/?{quote(period + app, safe=URL_SAFE)}"


def _rison_string(text: str) -> str:
    """A rison string literal (Kibana's URL state): `'...'` with `!` and `'` escaped by `!`."""
    return "'" + text.replace("!", "!!").replace("'", "!'") + "'"


def alert_message(doc: Mapping[str, Any], kibana_url: str | None) -> Message:
    """The notification of one alert."""
    alert, detector = _alert(doc), _detector(doc)
    rule = alert.get("rule", {}) if isinstance(alert.get("rule"), Mapping) else {}
    severity = str(alert.get("severity", "-"))
    lines = [
        str(alert.get("reason", "")),
        "",
        f"Rule: {rule.get('name', '-')} ({rule.get('rule_id', '-')})",
        f"Severity: {severity} (risk score {alert.get('risk_score', '-')})",
        f"Source: {_source(doc)}",
        f"Bucket/object: {_s3(doc)}",
        f"Actions: {', '.join(map(str, detector.get('actions') or [])) or '-'}",
        f"Events: {detector.get('event_count', '-')}",
        f"First seen: {detector.get('first_seen', '-')}",
        f"Alert id: {alert_id(doc)}",
    ]
    if kibana_url:
        lines.append(f"Open in Kibana: {discover_link(doc, kibana_url)}")
    title = f"[{severity}] {rule.get('name', 'new terms alert')}: {_source(doc)}"
    return Message(title, "\n".join(lines))


def digest_message(docs: Sequence[Mapping[str, Any]], kibana_url: str | None) -> Message:
    """One summary of many alerts of one execution: a line each (up to `DIGEST_LINES`)."""
    rules = sorted({str(_alert(doc).get("rule", {}).get("name", "-")) for doc in docs})
    lines = [f"{len(docs)} new alert(s) of {', '.join(rules)}:", ""]
    for doc in docs[:DIGEST_LINES]:
        lines.append(
            f"- [{_alert(doc).get('severity', '-')}] {_source(doc)} on {_s3(doc)}: "
            f"{', '.join(map(str, _detector(doc).get('actions') or [])) or '-'} "
            f"(first seen {_detector(doc).get('first_seen', '-')}, id {alert_id(doc)})"
        )
    if len(docs) > DIGEST_LINES:
        lines.append(f"... and {len(docs) - DIGEST_LINES} more")
    if kibana_url:
        lines += [
            "",
            f"Open in Kibana: {kibana_url.rstrip('/')}/app/discover#/view/{ALERTS_SEARCH}",
        ]
    return Message(f"{len(docs)} new alerts: {', '.join(rules)}", "\n".join(lines))


def probe_message(channel: str) -> Message:
    """What `detector notify test CHANNEL` sends."""
    return Message(
        "newterms-detector test notification",
        f"This is a test message of newterms-detector to the channel {channel!r}. "
        "Alerts will look like this channel's messages.",
    )
