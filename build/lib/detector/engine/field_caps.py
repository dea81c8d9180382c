"""The mapping types of a rule's fields in its indices (`_field_caps`), kept for a short time.

Every execution needs them (`detector.engine.type_split`), but mappings rarely change: one cheap
`_field_caps` request per rule and `TTL`, so a rule run every few minutes asks about once. A
mapping that changes meanwhile (a new index of another type) is seen within `TTL`, or at once
after an execution fails (the engine clears the cache then).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from detector.es.client import Elastic
from detector.query.type_groups import FieldTypes

# Seconds a `_field_caps` answer is reused for the same cluster, patterns and fields.
TTL = 60.0

_Key = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


class TypeCache:
    """`_field_caps` answers by cluster, index patterns and fields, each for `ttl` seconds."""

    def __init__(self, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self._answers: dict[_Key, tuple[float, FieldTypes]] = {}
        self._lock = threading.Lock()  # `once` runs rules on several threads (`pool`)

    def field_types(
        self, elastic: Elastic, patterns: Sequence[str], fields: Sequence[str]
    ) -> FieldTypes:
        """The types of `fields` in the indices `patterns` match (cached)."""
        key = (tuple(elastic.settings.es_url), tuple(patterns), tuple(fields))
        with self._lock:
            cached = self._answers.get(key)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        indices, types = elastic.field_types(patterns, fields)
        answer = FieldTypes.of(indices, types)
        with self._lock:
            self._answers[key] = (self.clock(), answer)
        return answer

    def clear(self) -> None:
        """Forget every answer (after a failed execution: a mapping may have changed)."""
        with self._lock:
            self._answers.clear()


SHARED = TypeCache()
