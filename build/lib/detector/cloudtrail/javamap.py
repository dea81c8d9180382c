"""How Elastic's ingest pipeline sees a parsed JSON object: Java `HashMap`s (pure).

The `json` processor parses a record into `HashMap`s, the pipeline's first script drops every
null and `""` value recursively (and then every map or list left empty), and the CloudTrail
script stores `requestParameters.toString()` and friends. Three Java behaviours leak into the
documents, and this module reproduces them:

- iteration order is *HashMap bucket order*: keys sorted on `(h ^ (h >>> 16)) & (capacity - 1)`
  with `h = String.hashCode()`, insertion order within a bucket; the capacity is 16, doubled
  while the map holds more than 3/4 of it, and it never shrinks, so it is decided by the number
  of keys *before* empty values were dropped;
- `Map.toString()` is `{k=v, k=v}` and `List.toString()` is `[a, b]`, with no quoting;
- numbers print as Java prints them (`Double.toString`: `1.0E7`, not `1e7`).

`clean(value)` returns the dropped-empty copy whose dicts are already in HashMap order, so
`to_java_string` and any later iteration see what the pipeline saw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

DEFAULT_CAPACITY = 16
_EMPTY = object()


@lru_cache(maxsize=65536)  # the same few hundred keys, record after record
def string_hash(text: str) -> int:
    """Java's `String.hashCode()` (over UTF-16 code units), as a 32-bit unsigned value."""
    data, value = text.encode("utf-16-be"), 0
    for offset in range(0, len(data), 2):
        value = (31 * value + int.from_bytes(data[offset : offset + 2], "big")) & 0xFFFFFFFF
    return value


def capacity_for(size: int) -> int:
    """The table size of a `new HashMap()` after `size` puts (resized above 3/4 full)."""
    capacity = DEFAULT_CAPACITY
    while size > capacity * 3 // 4:
        capacity *= 2
    return capacity


def hashmap_order(keys: list[str], capacity: int | None = None) -> list[str]:
    """`keys`, put in this order, in the order a Java HashMap iterates them."""
    table = capacity or capacity_for(len(keys))

    def bucket(key: str) -> int:
        value = string_hash(key)
        return (value ^ (value >> 16)) & (table - 1)

    return sorted(keys, key=bucket)  # sorted() is stable: insertion order within a bucket


def clean(value: Any) -> Any:
    """A copy without null/`""` values, recursively, nor maps and lists left empty; maps come
    back as dicts in HashMap order. Returns None when `value` itself is dropped."""
    result = _clean(value)
    return None if result is _EMPTY else result


def _clean(value: Any) -> Any:
    if value is None or value == "":
        return _EMPTY
    if isinstance(value, Mapping):
        # The capacity comes from the keys the parser put, before any was dropped.
        capacity = capacity_for(len(value))
        kept = {key: _clean(item) for key, item in value.items()}
        order = hashmap_order([str(key) for key in kept if kept[key] is not _EMPTY], capacity)
        return {key: kept[key] for key in order} if order else _EMPTY
    if isinstance(value, list):
        items = [item for item in map(_clean, value) if item is not _EMPTY]
        return items if items else _EMPTY
    return value


def to_java_string(value: Any) -> str:
    """`String.valueOf(value)` for what the JSON parser produces: maps, lists, scalars."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}={to_java_string(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_java_string(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if value is None:
        return "null"
    return str(value)


def java_double(value: float) -> str:
    """`Double.toString(value)`: plain between 10^-3 and 10^7, else `d.dddE±n`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(value)  # shortest round-trip digits, as Double.toString (JDK 19+)
        return text if "." in text else f"{text}.0"
    exponent = math.floor(math.log10(abs(value)))
    for precision in range(1, 18):
        mantissa = round(value / 10**exponent, precision)
        if float(f"{mantissa}e{exponent}") == value:
            break
    return f"{mantissa!r}E{exponent}"


def java_length(text: str) -> int:
    """`String.length()`: UTF-16 code units, so characters beyond the BMP count twice."""
    return len(text.encode("utf-16-le")) // 2
