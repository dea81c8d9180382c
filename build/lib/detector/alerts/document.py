"""Kibana-style Security alerts for new terms (pure: no Elasticsearch access).

One alert per new term, built from the oldest matching document in the window the way Kibana's
`wrapNewTermsAlerts` -> `transformHitToAlert` -> `buildAlertFields` do (notes §2), plus a
`detector.*` namespace with what Kibana does not record (term key, first-seen time, window,
event count, actions, S3 bucket and object). Unlike Kibana's, the alert is an ECS
`event.kind: alert` document that Kibana's External Alerts rule can promote
(`detector.alerts.promotion`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from detector.alerts import promotion
from detector.alerts.reason import alert_reason
from detector.alerts.s3_location import S3Location, get_field, s3_location
from detector.results import ExecutionContext, NewTerm
from detector.rules import Rule, Technique, Threat, ThreatEntry
from detector.times import iso, parse_iso, to_millis

SPACE_ID = "default"
# `kibana.alert.rule.*` constants of new_terms (notes §2.3, RR/get_common_alert_fields.ts).
RULE_CATEGORY = "New Terms Rule"
RULE_TYPE_ID = "siem.newTermsRule"
PRODUCER = "siem"
# Top-level source fields Kibana's filterSource drops (RT/factories/utils/filter_source.ts);
# `detector` is this service's own namespace and is dropped for the same reason.
_DROPPED_SOURCE_ROOTS = ("kibana", "signal", "threshold_result", "detector")
# Longest string an alert copies from its source document (the integration's own limit for
# CloudTrail's request parameters as keyword); longer ones are cut with a marker.
MAX_COPIED_CHARS = 8191


# --- identity -----------------------------------------------------------------------------


def _digest(parts: Sequence[Any]) -> str:
    canonical = json.dumps(list(parts), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def term_key(rule: Rule, values: Sequence[Any]) -> str:
    """A stable hash of (rule_id, fields, values); JSON types count (`1` is not `"1"`)."""
    return _digest(["term", rule.rule_id, list(rule.new_terms_fields), list(values)])


def alert_id(rule: Rule, term: NewTerm) -> str:
    """The alert `_id`: depends on rule, term and first-seen time only, never on the document.

    Kibana hashes the chosen source document's index and id into the alert id, so two runs that
    pick different documents for one term (timestamp ties, late data) write two alerts
    (elastic/kibana#174148). Hashing the first-seen time instead makes every run that sees the
    same episode produce the same id, which the `create` write then turns into a no-op (409).
    """
    return _digest(
        [
            "alert",
            rule.rule_id,
            list(rule.new_terms_fields),
            list(term.values),
            to_millis(term.first_seen),
        ]
    )


# --- time ---------------------------------------------------------------------------------


# --- source sanitising --------------------------------------------------------------------


def _set_path(target: dict[str, Any], path: str, value: Any) -> None:
    """Set `a.b.c` in nested dicts, replacing a non-object in the way."""
    head, _, rest = path.partition(".")
    if not rest:
        target[head] = value
        return
    child = target.get(head)
    if not isinstance(child, dict):
        child = target[head] = {}
    _set_path(child, rest, value)


def _split_namespace(source: dict[str, Any], root: str) -> dict[str, Any]:
    """Remove `root` and every `root.*` dotted key from `source`; return them as one object."""
    taken: dict[str, Any] = {}
    for key in [key for key in source if key == root or key.startswith(f"{root}.")]:
        value = source.pop(key)
        if key == root:
            if isinstance(value, Mapping):
                for name, item in value.items():
                    _set_path(taken, str(name), item)
        else:
            _set_path(taken, key[len(root) + 1 :], value)
    return taken


# Without these, orjson would turn datetimes and dataclasses into JSON instead of failing.
_PLAIN_JSON_ONLY = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _copy(source: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a JSON document: an orjson round trip is ~5x faster than `deepcopy`."""
    try:
        copied = orjson.loads(orjson.dumps(source, option=_PLAIN_JSON_ONLY))
    except TypeError:  # not plain JSON (a caller's own values): copy it the slow way
        return copy.deepcopy(dict(source))
    return copied if isinstance(copied, dict) else copy.deepcopy(dict(source))


def sanitize_source(source: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The copied source fields and the original `event.*` object, as Kibana sanitises them.

    Kibana's filterSource drops `kibana`, `signal`, `threshold_result` and `event` from the
    source; `buildAlertFields` re-adds `event.*` as `kibana.alert.original_event.*` and sets
    `event.kind: signal`. The detector's own `event.*` say `alert` instead
    (`detector.alerts.promotion`).
    """
    if not isinstance(source, Mapping):
        return {}, {}
    cleaned = _copy(source)
    for root in _DROPPED_SOURCE_ROOTS:
        _split_namespace(cleaned, root)
    original_event = _split_namespace(cleaned, "event")
    return cleaned, original_event


# --- the rule -----------------------------------------------------------------------------


def _entry(entry: ThreatEntry) -> dict[str, str]:
    return {"id": entry.id, "name": entry.name, "reference": entry.reference}


def _technique(technique: Technique) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": technique.id,
        "name": technique.name,
        "reference": technique.reference,
    }
    if technique.subtechnique:
        body["subtechnique"] = [_entry(sub) for sub in technique.subtechnique]
    return body


def threat_document(threat: Sequence[Threat]) -> list[dict[str, Any]]:
    """`kibana.alert.rule.threat`: Kibana's MITRE ATT&CK structure."""
    return [
        {
            "framework": item.framework,
            "tactic": _entry(item.tactic),
            "technique": [_technique(technique) for technique in item.technique],
        }
        for item in threat
    ]


def rule_parameters(rule: Rule) -> dict[str, Any]:
    """`kibana.alert.rule.parameters`: the rule's query parameters, in Kibana's snake_case."""
    parameters: dict[str, Any] = {
        "type": rule.type,
        "language": rule.language,
        "query": rule.query,
        "index": list(rule.index),
        "new_terms_fields": list(rule.new_terms_fields),
        "history_window_start": rule.history_window_start,
        "from": rule.from_,
        "to": rule.to,
        "max_signals": rule.max_signals,
        "risk_score": rule.risk_score,
        "severity": rule.severity,
        "timestamp_override_fallback_disabled": rule.timestamp_override_fallback_disabled,
    }
    if rule.timestamp_override is not None:
        parameters["timestamp_override"] = rule.timestamp_override
    return parameters


def _optional_rule_fields(rule: Rule) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in ("note", "license", "timestamp_override"):
        value = getattr(rule, name)
        if value is not None:
            fields[name] = value
    return fields


def rule_document(rule: Rule, ctx: ExecutionContext) -> dict[str, Any]:
    """`kibana.alert.rule.*`; `uuid` is the rule_id (there is no saved object)."""
    return {
        "name": rule.name,
        "rule_id": rule.rule_id,
        "uuid": rule.rule_id,
        "description": rule.description,
        "severity": rule.severity,
        "risk_score": rule.risk_score,
        "tags": list(rule.tags),
        "threat": threat_document(rule.threat),
        "from": rule.from_,
        "to": rule.to,
        "interval": rule.interval,
        "type": rule.type,
        "version": rule.version,
        "max_signals": rule.max_signals,
        "indices": list(rule.index),
        "references": list(rule.references),
        "author": list(rule.author),
        "enabled": rule.enabled,
        "new_terms_fields": list(rule.new_terms_fields),
        "history_window_start": rule.history_window_start,
        "parameters": rule_parameters(rule),
        "category": RULE_CATEGORY,
        "rule_type_id": RULE_TYPE_ID,
        "producer": PRODUCER,
        "consumer": PRODUCER,
        "execution": {
            "uuid": ctx.execution_uuid,
            "type": ctx.execution_type,
            "timestamp": iso(ctx.started_at),
        },
        **_optional_rule_fields(rule),
    }


# --- the alert ----------------------------------------------------------------------------


def _ancestors(hit: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": str(hit.get("_id", "")),
            "index": str(hit.get("_index", "")),
            "type": "event",
            "depth": 0,
        }
    ]


def _original_time(source: Mapping[str, Any], term: NewTerm) -> str:
    """The source's `@timestamp` (Kibana keeps it even with an override); first_seen if bad."""
    parsed = parse_iso(get_field(source, "@timestamp"))
    return iso(parsed if parsed is not None else term.first_seen)


def _actions(term: NewTerm, original_event: Mapping[str, Any]) -> list[str]:
    if term.actions:
        return list(term.actions)
    action = original_event.get("action")
    return [action] if isinstance(action, str) and action else []


def detector_document(
    rule: Rule,
    term: NewTerm,
    ctx: ExecutionContext,
    actions: Sequence[str],
    location: S3Location | None = None,
) -> dict[str, Any]:
    """`detector.*`: what Kibana does not record about a new term."""
    location = s3_location(term.hit.get("_source")) if location is None else location
    s3 = {
        name: value
        for name, value in (
            ("bucket", location.bucket),
            ("object_key", location.object_key),
            ("prefix", location.prefix),
        )
        if value is not None
    }
    document: dict[str, Any] = {
        "term_key": term_key(rule, term.values),
        "first_seen": iso(term.first_seen),
        "window": {"start": iso(ctx.window_start), "end": iso(ctx.window_end)},
        "history_start": iso(ctx.history_start),
        "event_count": term.event_count,
        "actions": list(actions),
    }
    if s3:
        document["s3"] = s3
    if ctx.baseline_coverage is not None:
        since = iso(ctx.baseline_since) if ctx.baseline_since is not None else None
        document["baseline"] = {"coverage": ctx.baseline_coverage, "since": since}
    return document


def _kibana_alert(
    rule: Rule,
    term: NewTerm,
    ctx: ExecutionContext,
    original_event: dict[str, Any],
    location: S3Location,
) -> dict[str, Any]:
    source = term.hit.get("_source")
    source = source if isinstance(source, Mapping) else {}
    started = iso(ctx.started_at)
    return {
        "uuid": alert_id(rule, term),
        "original_time": _original_time(source, term),
        "new_terms": list(term.values),
        "ancestors": _ancestors(term.hit),
        "depth": 1,
        "status": "active",
        "workflow_status": "open",
        "workflow_tags": [],
        "workflow_assignee_ids": [],
        "severity": rule.severity,
        "risk_score": rule.risk_score,
        "reason": alert_reason(rule, term, ctx, _actions(term, original_event), location),
        "rule": rule_document(rule, ctx),
        "intended_timestamp": iso(ctx.now),
        "start": started,
        "last_detected": started,
        "original_event": original_event,
    }


def _take(source: dict[str, Any], root: str) -> Any:
    """Remove `root` and its dotted `root.*` keys from `source`; the object they make (None if
    none), or the value of `root` itself when it is not an object (dotted keys, which no
    mapping could hold beside it, then stay)."""
    if root in source and not isinstance(source[root], Mapping):
        return source.pop(root)
    return _split_namespace(source, root) or None


def displaced_fields(source: dict[str, Any]) -> dict[str, Any]:
    """Remove, from `source`, the fields the alert sets itself for Kibana's promotion rule
    (`message`, ECS `rule.*`) and the source's `data_stream.*`; return them as one object.

    The alert is an alert, not the source event: in a `logs-*` alerts index a copied
    `data_stream.dataset` would make it look like an event of that data set (and exclude it
    from promotion for `m365_defender.*`). Nothing is lost: `message` and `rule` go to
    `detector.original.*`, `data_stream` to `kibana.alert.original_data_stream.*`."""
    displaced: dict[str, Any] = {}
    if "message" in source:
        displaced["message"] = source.pop("message")
    for root in ("rule", "data_stream"):
        value = _take(source, root)
        if value is not None:
            displaced[root] = value
    return displaced


def build_alert(rule: Rule, term: NewTerm, ctx: ExecutionContext) -> dict[str, Any]:
    """The alert document for one new term; never raises on odd or missing source fields."""
    location = s3_location(term.hit.get("_source"))  # once: the reason and `detector.s3`
    source, original_event = sanitize_source(term.hit.get("_source"))
    displaced = displaced_fields(source)
    data_stream = displaced.get("data_stream")
    data_stream = displaced.pop("data_stream") if isinstance(data_stream, Mapping) else None
    truncated = [
        *bound_strings(source),
        *bound_strings(original_event, "kibana.alert.original_event"),
        *bound_strings(data_stream or {}, "kibana.alert.original_data_stream"),
        *bound_strings(displaced, "detector.original"),
    ]
    alert = source
    alert.update(_alert_fields(rule, ctx))
    alert["kibana"] = {
        "space_ids": [SPACE_ID],
        "alert": _kibana_alert(rule, term, ctx, original_event, location),
    }
    if data_stream is not None:  # Kibana copies it (traverse_and_mutate_doc.ts); moved here
        alert["kibana"]["alert"]["original_data_stream"] = data_stream
    alert["detector"] = detector_document(rule, term, ctx, _actions(term, original_event), location)
    if displaced:
        alert["detector"]["original"] = displaced
    if truncated:
        alert["detector"]["truncated_fields"] = truncated
    return alert


def _alert_fields(rule: Rule, ctx: ExecutionContext) -> dict[str, Any]:
    """The alert's own top-level ECS fields, those Kibana's promotion rule reads included."""
    return {
        "@timestamp": iso(ctx.started_at),
        "event": promotion.event_fields(rule, ctx.started_at),
        "message": rule.name,  # the promotion rule's `rule_name_override`
        "rule": promotion.rule_fields(rule),
    }


def bound_strings(doc: dict[str, Any], prefix: str = "") -> list[str]:
    """Cut, in place, every string of `doc` longer than `MAX_COPIED_CHARS` (a marker says how
    much is left out); the dotted paths of those cut. The source index may hold a 40 KB value
    (a keyword with `ignore_above` indexes nothing of it); the alert keeps a bounded copy."""
    cut: list[str] = []
    for key, value in doc.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, str) and len(value) > MAX_COPIED_CHARS:
            doc[key] = _cut(value)
            cut.append(path)
        elif isinstance(value, dict):
            cut += bound_strings(value, path)
        elif isinstance(value, list):
            cut += _bound_list(value, path)
    return cut


def _bound_list(items: list[Any], path: str) -> list[str]:
    cut: list[str] = []
    for position, item in enumerate(items):
        if isinstance(item, str) and len(item) > MAX_COPIED_CHARS:
            items[position] = _cut(item)
            cut.append(path)
        elif isinstance(item, dict):
            cut += bound_strings(item, path)
    return sorted(set(cut)) if len(cut) > 1 else cut


def _cut(value: str) -> str:
    return f"{value[:MAX_COPIED_CHARS]}... [{len(value) - MAX_COPIED_CHARS} more characters]"
