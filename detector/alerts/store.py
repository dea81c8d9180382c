"""The alerts index: its template, the same-episode check and bulk writes.

Every request goes through `detector.es.client.Elastic`; nothing here imports the client.

- The index is a plain, visible index (Kibana data views match it; no data stream, ingest
  pipeline or ILM, which the test distribution lacks), created from a composable index
  template `<index>-template` (`detector.es.templates`) with explicit mappings
  (detector/mappings/alerts-template.json).
- Writes use `create` with the deterministic alert id, so writing an alert twice is a no-op
  (409), as in Kibana's persistence layer (RR/create_persistence_rule_type_wrapper.ts).
- `already_alerted` adds what the id alone cannot: a term whose first-seen time moved (late
  data, a new episode seen from another window) but which already has an alert in the same
  episode is not alerted again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from detector.alerts.document import term_key
from detector.es.own_index import OwnIndex
from detector.es.responses import BulkResult
from detector.es.templates import template_name as template_name  # re-exported
from detector.results import NewTerm
from detector.rules import Rule
from detector.times import iso, to_millis

# Term keys per search; Kibana's duplicate check also works in chunks of 10,000.
KEYS_PER_SEARCH = 10_000
# Distinct first-seen times kept per term key in one answer; alerts of one term within two
# history lengths are a handful (one per episode), so this is generous.
EPISODES_PER_KEY = 100


class AlertStore(OwnIndex):
    """Reads and writes the alerts of every rule in one index."""

    TEMPLATE_RESOURCE = "mappings/alerts-template.json"

    def already_alerted(
        self,
        rule: Rule,
        terms: Sequence[NewTerm],
        history: timedelta,
        before: datetime | None = None,
    ) -> set[tuple[Any, ...]]:
        """Values of the terms that already have an alert of this rule in the same episode.

        Same episode: an alert with the same term key whose `detector.first_seen` is within
        `history` of the candidate's first-seen time, both ends inclusive. With `before`, only
        alerts of executions scheduled before it count (`detector explain` replays one).
        """
        by_key: dict[str, list[NewTerm]] = {}
        for term in terms:
            by_key.setdefault(term_key(rule, term.values), []).append(term)
        keys = list(by_key)
        found: set[tuple[Any, ...]] = set()
        for start in range(0, len(keys), KEYS_PER_SEARCH):
            chunk = {key: by_key[key] for key in keys[start : start + KEYS_PER_SEARCH]}
            found |= self._alerted_in(rule, chunk, history, before)
        return found

    def _alerted_in(
        self,
        rule: Rule,
        by_key: Mapping[str, list[NewTerm]],
        history: timedelta,
        before: datetime | None = None,
    ) -> set[tuple[Any, ...]]:
        terms = [term for group in by_key.values() for term in group]
        body = episode_query(rule.rule_id, list(by_key), terms, history)
        if before is not None:
            intended = {"range": {"kibana.alert.intended_timestamp": {"lt": iso(before)}}}
            body["query"]["bool"]["filter"].append(intended)
        response = self.elastic.search([self.index], body)
        seen = first_seen_by_key(response)
        limit = int(history.total_seconds() * 1000)
        return {
            term.values
            for key, group in by_key.items()
            for term in group
            if any(abs(to_millis(term.first_seen) - other) <= limit for other in seen.get(key, ()))
        }

    def write(
        self, alerts: Mapping[str, Mapping[str, Any]], execution_id: str | None = None
    ) -> BulkResult:
        """Create the alerts under their ids; ids already there are reported, not errors.

        With `execution_id`, an id already there that this very execution wrote counts as
        created: a bulk request whose answer was lost (a timeout, a 429 after the node had
        indexed it) is sent again, and its items then answer 409; without this, alerts the
        execution did create would be counted by no execution."""
        if not alerts:
            return BulkResult()
        result = self.elastic.bulk_create(self.index, alerts)
        if execution_id is not None and result.existing:
            ours = self._written_by(execution_id, result.existing)
            result.created.extend(doc_id for doc_id in result.existing if doc_id in ours)
            result.existing[:] = [doc_id for doc_id in result.existing if doc_id not in ours]
        return result

    def _written_by(self, execution_id: str, ids: Sequence[str]) -> set[str]:
        """Which of these alerts carry `execution_id` (one `mget`, only when some existed)."""
        found = self.elastic.mget_versioned(self.index, ids)
        return {
            doc_id for doc_id, doc in found.items() if _execution_of(doc.source) == execution_id
        }


def _execution_of(alert: Mapping[str, Any]) -> Any:
    """`kibana.alert.rule.execution.uuid` of a stored alert (None if it has none)."""
    rule = alert.get("kibana", {}).get("alert", {}).get("rule", {})
    return rule.get("execution", {}).get("uuid") if isinstance(rule, Mapping) else None


def episode_query(
    rule_id: str, keys: Sequence[str], terms: Sequence[NewTerm], history: timedelta
) -> dict[str, Any]:
    """One search: alerts of the rule with these term keys, first seen near the candidates."""
    times = [term.first_seen for term in terms]
    return {
        "size": 0,
        "query": {
            "bool": {
                "filter": [
                    {"term": {"kibana.alert.rule.rule_id": rule_id}},
                    {"terms": {"detector.term_key": list(keys)}},
                    {"range": {"detector.first_seen": _range(times, history)}},
                ]
            }
        },
        "aggs": {
            "keys": {
                "terms": {"field": "detector.term_key", "size": max(len(keys), 1)},
                "aggs": {
                    "first_seen": {
                        "terms": {"field": "detector.first_seen", "size": EPISODES_PER_KEY}
                    }
                },
            }
        },
    }


def _range(times: Sequence[datetime], history: timedelta) -> dict[str, str]:
    return {
        "gte": iso(min(times) - history),
        "lte": iso(max(times) + history),
        "format": "strict_date_optional_time",
    }


def first_seen_by_key(response: Mapping[str, Any]) -> dict[str, list[int]]:
    """Term key -> the first-seen times (epoch ms) of its alerts, from the aggregation."""
    buckets = response.get("aggregations", {}).get("keys", {}).get("buckets", [])
    return {
        str(bucket["key"]): [int(seen["key"]) for seen in bucket["first_seen"]["buckets"]]
        for bucket in buckets
    }
