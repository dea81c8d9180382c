"""`kibana.alert.reason`: one readable sentence per alert (pure).

Kibana's formatter (RT/utils/reason_formatters.ts) names the event category and the entities
present, then "created <severity> alert <rule name>.", and omits clauses for missing fields.
This one follows that shape but also says what was new and, for S3, which bucket and object:

    Anonymous GetObject of s3://bucket/key from 203.0.113.7, a source not seen in the
    previous 7d, created medium alert AWS S3 Unauthenticated Bucket Access by Rare Source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from detector.alerts.s3_location import S3Location, get_field, s3_location
from detector.results import ExecutionContext, NewTerm
from detector.rules import Rule

# CloudTrail writes `anonymous` since 2024 and `ANONYMOUS_PRINCIPAL` before (notes §2).
ANONYMOUS_ACCOUNTS = frozenset({"anonymous", "ANONYMOUS_PRINCIPAL"})
_RELATIVE_HISTORY = re.compile(r"^now-(\d+[smhdwMy])$")
# What a new value of these fields is, in words; other fields are named as they are.
_NOUNS = {
    "source.address": "source",
    "source.ip": "source",
    "user.name": "user",
    "user.id": "user",
    "host.name": "host",
    "cloud.account.id": "account",
    "tls.client.server_name": "host name",
    "user_agent.original": "user agent",
}


def join_words(words: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def _duration(delta: timedelta) -> str:
    """`7d`, `36h`, `90m`; else the largest unit with one decimal (`7.5d`)."""
    seconds = max(int(delta.total_seconds()), 0)
    for unit, size in _UNITS:
        if seconds and seconds % size == 0 and seconds // size < 100:
            return f"{seconds // size}{unit}"
    unit, size = next((unit, size) for unit, size in _UNITS if seconds >= size or size == 1)
    return f"{seconds / size:.1f}{unit}"


def history_length(rule: Rule, ctx: ExecutionContext) -> str:
    """`7d` for `now-7d`; otherwise the span from history start to the window's end."""
    match = _RELATIVE_HISTORY.match(rule.history_window_start.strip())
    if match:
        return match.group(1)
    return _duration(ctx.window_end - ctx.history_start)


def novelty(rule: Rule, ctx: ExecutionContext) -> str:
    """`a source not seen in the previous 7d`, naming what the rule's fields hold."""
    fields = rule.new_terms_fields
    if len(fields) == 1:
        noun = _NOUNS.get(fields[0], f"{fields[0]} value")
    else:
        nouns = [_NOUNS.get(field, field) for field in fields]
        noun = f"{join_words(nouns)} combination"
    return f"a {noun} not seen in the previous {history_length(rule, ctx)}"


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = next((item for item in value if isinstance(item, str | int | float)), None)
    if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
        return str(value)
    return None


def _who(source: Mapping[str, Any]) -> tuple[str, str]:
    """(`Anonymous `, ``) for anonymous callers, else (``, ` by <user or account>`)."""
    account = _text(get_field(source, "cloud.account.id"))
    if account in ANONYMOUS_ACCOUNTS:
        return "Anonymous ", ""
    user = _text(get_field(source, "user.name"))
    if user is not None:
        return "", f" by {user}"
    return ("", f" by account {account}") if account else ("", "")


def _from(rule: Rule, term: NewTerm) -> str:
    """` from <address>`: the new term's own address when the rule's terms include it (a
    document with an array `source.address` alerts once per new value, each naming its own),
    else the document's."""
    by_field = dict(zip(rule.new_terms_fields, term.values, strict=False))
    source = _source(term)
    address = (
        _text(by_field.get("source.address"))
        or _text(get_field(source, "source.address"))
        or _text(get_field(source, "source.ip"))
    )
    return f" from {address}" if address else ""


def _ending(rule: Rule, ctx: ExecutionContext) -> str:
    return f"{novelty(rule, ctx)}, created {rule.severity} alert {rule.name}."


def _is_s3(source: Mapping[str, Any], location: S3Location) -> bool:
    provider = _text(get_field(source, "event.provider"))
    return location.bucket is not None and (provider is None or provider.startswith("s3"))


def _s3_reason(
    rule: Rule, term: NewTerm, ctx: ExecutionContext, actions: Sequence[str], uri: str
) -> str:
    source = _source(term)
    prefix, by = _who(source)
    count = f" ({term.event_count} events)" if term.event_count > 1 else ""
    what = join_words(actions) or "access"
    return f"{prefix}{what}{by} of {uri}{count}{_from(rule, term)}, {_ending(rule, ctx)}"


def _terms(rule: Rule, term: NewTerm) -> str:
    pairs = zip(rule.new_terms_fields, term.values, strict=False)
    return join_words([f"{field} {_value(value)}" for field, value in pairs])


def _value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) or value is None else str(value)


def _generic_reason(
    rule: Rule, term: NewTerm, ctx: ExecutionContext, actions: Sequence[str]
) -> str:
    source = _source(term)
    category = _text(get_field(source, "event.category"))
    event = f"{category} event" if category else "event"
    if actions:
        event = f"{event} {join_words(actions)}"
    _prefix, by = _who(source)
    host = _text(get_field(source, "host.name"))
    on = f" on {host}" if host else ""
    sentence = f"{event} with new {_terms(rule, term)}{by}{_from(rule, term)}{on}"
    return f"{sentence[0].upper()}{sentence[1:]}, {_ending(rule, ctx)}"


def _source(term: NewTerm) -> Mapping[str, Any]:
    source = term.hit.get("_source")
    return source if isinstance(source, Mapping) else {}


def alert_reason(
    rule: Rule,
    term: NewTerm,
    ctx: ExecutionContext,
    actions: Sequence[str],
    location: S3Location | None = None,
) -> str:
    """The reason sentence: S3-specific when the source is an S3 event with a bucket
    (`location`: the source's, when the caller has it already)."""
    location = s3_location(_source(term)) if location is None else location
    if location.uri is not None and _is_s3(_source(term), location):
        return _s3_reason(rule, term, ctx, actions, location.uri)
    return _generic_reason(rule, term, ctx, actions)
