"""An independent, brute-force computation of the alerts an execution should write.

It shares no code with the engine: documents are plain dicts evaluated in Python, the rule's
query is a Python predicate, windows are timedelta arithmetic and index patterns fnmatch. It
restates the semantics of the Kibana notes (§1.3 "new decided precisely", §2.6, §4):

- a term is a tuple of values of the new-terms fields (arrays: every combination; a missing
  field: no term);
- a document's time is its override field, else `@timestamp` (unless the fallback is off);
- a term is new at `now` iff a matching document has it in `[start, end]` and none in
  `[history_start, start]`; its first-seen time is the minimum time in the window;
- across runs: terms sorted by (first_seen, values), those already alerted in the same episode
  (an alert for the same values whose first-seen time is within the history length) dropped,
  then at most `max_signals` alerted.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

Source = Mapping[str, Any]
Predicate = Callable[[Source], bool]

BUILTIN_ACTIONS = frozenset({"GetObject", "PutObject", "ListObjects", "DeleteObject", "ListBucket"})


@dataclass(frozen=True)
class Doc:
    """A document as indexed: where, and what."""

    index: str
    source: Source


@dataclass(frozen=True)
class Spec:
    """The parts of a rule the brute force needs, restated independently."""

    index_patterns: Sequence[str]
    fields: Sequence[str]
    predicate: Predicate
    lookback: timedelta = timedelta(minutes=9)
    history: timedelta = timedelta(days=7)
    override: str | None = "event.ingested"
    fallback: bool = True
    max_signals: int = 100
    # Fields whose IP addresses are compared in canonical form (a field mapped `ip` in some
    # indices and `keyword` in others: the same address, however it is written, is one term).
    canonical_ips: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Expected:
    """One expected alert."""

    values: tuple[Any, ...]
    first_seen: datetime


def values_at(source: Source, path: str) -> list[Any]:
    """Every leaf value at a dotted path, through nested objects, arrays and dotted keys."""
    parts, results = path.split("."), []
    for cut in range(1, len(parts) + 1):
        key, rest = ".".join(parts[:cut]), ".".join(parts[cut:])
        if key not in source:
            continue
        for child in _flatten(source[key]):
            if rest and isinstance(child, Mapping):
                results.extend(values_at(child, rest))
            elif not rest and not isinstance(child, Mapping):
                results.append(child)
    return results


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [item for element in value for item in _flatten(element)]
    return [] if value is None else [value]


def parse_time(text: str) -> datetime:
    """An ISO-8601 time from a document, in UTC, at millisecond precision (as ES `date`)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def time_of(source: Source, spec: Spec) -> datetime | None:
    """The document's time for the rule: the override, else `@timestamp` if the fallback is on."""
    if spec.override:
        override = values_at(source, spec.override)
        if override:
            return min(parse_time(str(value)) for value in override)
        if not spec.fallback:
            return None
    stamps = values_at(source, "@timestamp")
    return min(parse_time(str(value)) for value in stamps) if stamps else None


def terms_of(
    source: Source, fields: Sequence[str], canonical_ips: frozenset[str] = frozenset()
) -> list[tuple[Any, ...]]:
    """Every combination of the fields' values (none if a field is missing); addresses of the
    `canonical_ips` fields written as Elasticsearch's `ip` field returns them."""
    per_field = [
        sorted(
            {_ip_form(v) if name in canonical_ips else v for v in values_at(source, name)}, key=repr
        )
        for name in fields
    ]
    return [tuple(combo) for combo in itertools.product(*per_field)]


def _ip_form(value: Any) -> Any:
    """RFC 5952 text of an IP address (IPv4-mapped IPv6 as IPv4); anything else unchanged."""
    if not isinstance(value, str) or "%" in value:
        return value
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return value
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped if mapped is not None else address)


def is_anonymous_s3_access(source: Source) -> bool:
    """The built-in rule's KQL, evaluated in Python (KQL on arrays: any value matches)."""

    def has(path: str, accepted: Iterable[str]) -> bool:
        return any(value in set(accepted) for value in values_at(source, path))

    return (
        has("event.dataset", {"aws.cloudtrail"})
        and has("event.provider", {"s3.amazonaws.com"})
        and has("event.action", BUILTIN_ACTIONS)
        and has("event.outcome", {"success"})
        and has("aws.cloudtrail.user_identity.type", {"AWSAccount", "Unknown"})
        and has("cloud.account.id", {"anonymous"})
    )


def excluded_source(addresses: Iterable[str]) -> Callable[[Source], bool]:
    """A predicate: the document's source is excepted (exact address or CIDR on the IP)."""
    exact = {value for value in addresses if "/" not in value}
    networks = [ipaddress.ip_network(value, strict=False) for value in addresses if "/" in value]

    def excluded(source: Source) -> bool:
        if any(value in exact for value in values_at(source, "source.address")):
            return True
        for value in values_at(source, "source.ip"):
            address = ipaddress.ip_address(value)
            if any(address in network for network in networks):
                return True
        return False

    return excluded


def new_terms(docs: Iterable[Doc], spec: Spec, now: datetime) -> dict[tuple[Any, ...], datetime]:
    """The new terms at `now`, each with its first-seen time in the window."""
    end = now.astimezone(UTC).replace(microsecond=now.microsecond // 1000 * 1000)
    start, history_start = end - spec.lookback, end - spec.history
    first_in_window: dict[tuple[Any, ...], datetime] = {}
    in_history: set[tuple[Any, ...]] = set()
    for doc in docs:
        if not any(fnmatch.fnmatchcase(doc.index, pattern) for pattern in spec.index_patterns):
            continue
        if not spec.predicate(doc.source):
            continue
        moment = time_of(doc.source, spec)
        if moment is None:
            continue
        for term in terms_of(doc.source, spec.fields, spec.canonical_ips):
            if history_start <= moment <= start:
                in_history.add(term)
            if start <= moment <= end:
                previous = first_in_window.get(term)
                first_in_window[term] = moment if previous is None else min(previous, moment)
    return {term: seen for term, seen in first_in_window.items() if term not in in_history}


def ordered(terms: Mapping[tuple[Any, ...], datetime]) -> list[Expected]:
    """New terms oldest first, values breaking ties (strings after numbers)."""
    items = [Expected(values, seen) for values, seen in terms.items()]
    return sorted(
        items,
        key=lambda item: (item.first_seen, tuple((isinstance(v, str), v) for v in item.values)),
    )


@dataclass
class Simulation:
    """A sequence of executions, remembering what was alerted (the alerts index)."""

    docs: list[Doc]
    spec: Spec
    alerted: dict[tuple[Any, ...], list[datetime]] = field(default_factory=dict)

    def fresh(self, now: datetime) -> list[Expected]:
        """New terms at `now` not alerted yet in their episode, oldest first."""
        episode = self.spec.history - self.spec.lookback
        return [
            item
            for item in ordered(new_terms(self.docs, self.spec, now))
            if not any(
                abs(item.first_seen - seen) <= episode for seen in self.alerted.get(item.values, [])
            )
        ]

    def run(self, now: datetime) -> list[Expected]:
        """The alerts the execution at `now` should write (and remember them)."""
        chosen = self.fresh(now)[: self.spec.max_signals]
        for item in chosen:
            self.alerted.setdefault(item.values, []).append(item.first_seen)
        return chosen


def _matching(docs: Iterable[Doc], spec: Spec) -> Iterable[tuple[Doc, datetime]]:
    """The documents of the rule's indices that match its query, with their time."""
    for doc in docs:
        if not any(fnmatch.fnmatchcase(doc.index, pattern) for pattern in spec.index_patterns):
            continue
        moment = time_of(doc.source, spec) if spec.predicate(doc.source) else None
        if moment is not None:
            yield doc, moment


def skipped_documents(docs: Iterable[Doc], spec: Spec, now: datetime) -> int:
    """Window documents matching the query that produce no term (a field missing)."""
    end = now.astimezone(UTC).replace(microsecond=now.microsecond // 1000 * 1000)
    start = end - spec.lookback
    return sum(
        1
        for doc, moment in _matching(docs, spec)
        if start <= moment <= end and not terms_of(doc.source, spec.fields)
    )


def oldest(docs: Iterable[Doc], spec: Spec, now: datetime) -> datetime | None:
    """The oldest time of a matching document at or before `now` (the window end)."""
    times = [moment for _, moment in _matching(docs, spec) if moment <= now]
    return min(times) if times else None
