"""Fields mapped differently in the indices of one rule's patterns, and what each may hold. Pure.

A field can be `keyword` in one index and `ip` in another (a custom pipeline, an old Filebeat
index). Elasticsearch then refuses, per shard, any `terms` query, `include` list or `must_not`
value the `ip` index cannot parse ("'AWS Internal' is not an IP string literal"), and one
composite over both merges unlike keys (an `ip` shard orders by the address bytes, a `keyword`
shard by the text, so the same address comes back twice and the `after` key of one is invalid
for the other). So the indices are split into groups of one type per field (`groups`), every
phase asks each group only what it can hold (`holds`), and terms are compared in one form
(`canonical`: what a terms aggregation on an `ip` field returns).

`FieldTypes` comes from `_field_caps` (`detector.es.client.Elastic.field_types`).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Types whose values compare as the same strings in a composite: never split between them.
_KEYWORD_LIKE = frozenset({"keyword", "constant_keyword", "wildcard"})
_INTEGERS = frozenset({"long", "integer", "short", "byte", "unsigned_long"})
_NUMBERS = _INTEGERS | {"double", "float", "half_float", "scaled_float"}


def family(kind: str) -> str:
    """The group a mapping type belongs to: `keyword` for the string types, else itself."""
    return "keyword" if kind in _KEYWORD_LIKE else kind


def canonical(value: Any) -> Any:
    """An IP address string in the form a terms aggregation on an `ip` field returns it (IPv6
    compressed lowercase per RFC 5952, IPv4-mapped IPv6 as the IPv4 address, as Elasticsearch's
    `InetAddresses` stores it); any other value unchanged."""
    if not isinstance(value, str):
        return value
    address = _address(value)
    if address is None:
        return value
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def holds(kind: str, value: Any) -> bool:
    """Whether a term query for `value` on a field of mapping type `kind` can be parsed (a value
    it cannot parse fails the whole shard, not just the clause)."""
    if kind == "ip":
        return isinstance(value, str) and _address(value) is not None
    if kind in _NUMBERS:
        return _is_number(value, integer=kind in _INTEGERS)
    if kind == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    return True


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # No scope ids (`fe80::1%eth0`): an `ip` field refuses them.
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_number(value: Any, *, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and (not integer or number.is_integer())


@dataclass(frozen=True)
class Group:
    """Indices in which every field has one type (`kinds`: field -> mapping type)."""

    indices: tuple[str, ...]
    kinds: Mapping[str, str]

    def holds(self, field: str, value: Any) -> bool:
        """Whether this group's mapping of `field` can hold `value` (unmapped: anything)."""
        return holds(self.kinds.get(field, ""), value)


@dataclass(frozen=True)
class FieldTypes:
    """What `_field_caps` says about some fields in the indices of a rule's patterns."""

    indices: tuple[str, ...]  # every index the patterns matched
    types: Mapping[str, Mapping[str, tuple[str, ...]]]  # field -> type -> indices

    @classmethod
    def of(
        cls, indices: Sequence[str], types: Mapping[str, Mapping[str, Sequence[str]]]
    ) -> FieldTypes:
        """From `Elastic.field_types`' answer."""
        kinds = {field: {k: tuple(names) for k, names in by.items()} for field, by in types.items()}
        return cls(tuple(indices), kinds)

    def conflicts(self, fields: Iterable[str]) -> dict[str, dict[str, tuple[str, ...]]]:
        """The fields with more than one type family, each with type -> indices."""
        found: dict[str, dict[str, tuple[str, ...]]] = {}
        for field in fields:
            kinds = self.types.get(field, {})
            if len({family(kind) for kind in kinds}) > 1:
                found[field] = {kind: tuple(sorted(names)) for kind, names in kinds.items()}
        return found

    def groups(self, fields: Sequence[str]) -> list[Group]:
        """The indices split so that every field has one type family per group, the group of
        most indices first.

        An index that does not map a field joins the field's most common type (it holds no
        value of it, so it never needs a group of its own).
        """
        per_index = {name: self._signature(name, fields) for name in self.indices}
        grouped: dict[tuple[str, ...], list[str]] = {}
        for name, signature in per_index.items():
            grouped.setdefault(signature, []).append(name)
        # Ties: the group with the greatest index name first (dated or versioned names: the
        # newest, whose type new indices most likely share; see `type_split._largest`).
        by_name = sorted(grouped.items(), key=lambda item: max(item[1]), reverse=True)
        ordered = sorted(by_name, key=lambda item: -len(item[1]))
        return [
            Group(tuple(sorted(names)), {f: k for f, k in zip(fields, kinds, strict=True) if k})
            for kinds, names in ordered
        ]

    def _signature(self, index: str, fields: Sequence[str]) -> tuple[str, ...]:
        return tuple(self._family_in(index, field) for field in fields)

    def _family_in(self, index: str, field: str) -> str:
        kinds = self.types.get(field, {})
        for kind, names in kinds.items():
            if index in names:
                return family(kind)
        # Unmapped here: the most common family of the field ("" when no index maps it).
        counts = sorted(((len(names), family(kind)) for kind, names in kinds.items()), reverse=True)
        return counts[0][1] if counts else ""


NO_TYPES = FieldTypes((), {})


def describe(field: str, kinds: Mapping[str, Sequence[str]]) -> str:
    """One line naming each type of a conflicting field and the indices mapping it so."""
    parts = [f"{kind} in {', '.join(names)}" for kind, names in sorted(kinds.items())]
    return f"{field} is mapped as {'; as '.join(parts)}"
