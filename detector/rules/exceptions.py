"""Rule exceptions (Kibana's exception lists): field/value pairs a rule never considers. Pure.

Kibana turns a rule's exception items into one filter applied with `excludeExceptions: true` to
EVERY phase, history included (`build_exception_filter.ts`; §1.2 of the Kibana notes). So an
excepted document neither alerts nor counts as history; we keep that meaning.

Two sources:

- `DETECTOR_EXCEPTION_SOURCE_ADDRESSES` (every rule): exact `source.address` values, and CIDR
  ranges matched on `source.ip` (the address is a keyword; the pipeline sets `source.ip` only when
  the whole address is one IP literal, see the CloudTrail notes §1).
- `DETECTOR_EXCEPTIONS_FILE`, a TOML file of entries::

      [[exception]]
      rule_id = "59bf26c2-..."   # or "*" for every rule
      field = "source.address"
      values = ["203.0.113.7", "10.0.0.0/8", "AWS Internal"]
      comment = "why"            # optional

  A string value that is a CIDR range becomes a `term` query with the range, which an `ip` field
  matches as a range; on `*.address` fields it is matched on the sibling `*.ip` field.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.errors import ConfigError
from detector.settings import Settings, env_name

Value = str | int | float | bool
ANY_RULE = "*"
# ECS keyword addresses and the ip field the pipelines fill from them.
_IP_FIELD_OF = {
    "source.address": "source.ip",
    "destination.address": "destination.ip",
    "client.address": "client.ip",
    "server.address": "server.ip",
}
_ENTRY_KEYS = {"rule_id", "field", "values", "comment"}
# Digits, dots and colons with a prefix length: meant as a CIDR range, whatever its validity.
_CIDR_LIKE = re.compile(r"^[0-9A-Fa-f:.]*[.:][0-9A-Fa-f:.]*/\d*$")


# Whether the searched indices can hold a value of a field
# (`detector.query.type_groups.Group.holds`).
Holds = Callable[[str, Any], bool]


def _any_value(_field: str, _value: Any) -> bool:
    return True


@dataclass(frozen=True)
class ExceptionItem:
    """Documents whose `field` holds one of `values`, or an IP inside one of `networks`."""

    rule_id: str
    field: str
    values: tuple[Value, ...] = ()
    networks: tuple[str, ...] = ()
    origin: str = ""

    def applies_to(self, rule_id: str) -> bool:
        """Whether this item belongs to the rule."""
        return self.rule_id in (ANY_RULE, rule_id)

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields its clauses search."""
        ip_field = _IP_FIELD_OF.get(self.field, self.field)
        return (self.field, ip_field) if self.networks and ip_field != self.field else (self.field,)

    def clauses(self, holds: Holds = _any_value) -> list[dict[str, Any]]:
        """`must_not` clauses excluding the matching documents, with only the values `holds`
        says the searched indices can hold: a value an index cannot parse (`AWS Internal` for an
        `ip` field) fails every search of it, and could match nothing there anyway."""
        clauses: list[dict[str, Any]] = []
        exact = [value for value in self.values if holds(self.field, value)]
        if exact:
            clauses.append({"terms": {self.field: exact}})
        ip_field = _IP_FIELD_OF.get(self.field, self.field)
        # A CIDR range is a valid term of an `ip` field: ask about its address.
        clauses.extend(
            {"term": {ip_field: network}}
            for network in self.networks
            if holds(ip_field, network.split("/", 1)[0])
        )
        return clauses


@dataclass(frozen=True)
class ExceptionList:
    """Every exception item the detector knows."""

    items: tuple[ExceptionItem, ...] = ()

    def must_not(self, rule_id: str, holds: Holds = _any_value) -> list[dict[str, Any]]:
        """The `must_not` clauses for one rule (values kept by `holds`, see `clauses`)."""
        return [
            clause
            for item in self.items
            if item.applies_to(rule_id)
            for clause in item.clauses(holds)
        ]

    def fields(self, rule_id: str) -> tuple[str, ...]:
        """The fields the rule's exceptions search, without repeats."""
        found = (name for item in self.items if item.applies_to(rule_id) for name in item.fields)
        return tuple(dict.fromkeys(found))


NO_EXCEPTIONS = ExceptionList()


def from_settings(settings: Settings) -> ExceptionList:
    """The exceptions configured in settings (source addresses, then the exceptions file)."""
    items: list[ExceptionItem] = []
    if settings.exception_source_addresses:
        origin = env_name("exception_source_addresses")
        addresses = settings.exception_source_addresses
        try:
            items.append(_item(ANY_RULE, "source.address", addresses, origin))
        except ValueError as exc:
            raise ConfigError([f"{origin}: {exc}"]) from None
    if settings.exceptions_file is not None:
        items.extend(load_file(settings.exceptions_file))
    return ExceptionList(tuple(items))


def load_file(path: Path) -> tuple[ExceptionItem, ...]:
    """Read an exceptions TOML file; `ConfigError` lists every bad entry with the file name."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the exceptions file: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    problems = [
        f"{path}: unknown key {key!r} (expected [[exception]] tables)"
        for key in document
        if key != "exception"
    ]
    entries = document.get("exception", [])
    if not isinstance(entries, list):
        raise ConfigError([f"{path}: 'exception' must be an array of tables ([[exception]])"])
    items: list[ExceptionItem] = []
    for number, entry in enumerate(entries, start=1):
        origin = f"{path}: exception #{number}"
        try:
            items.append(_entry(entry, origin))
        except ValueError as exc:
            problems.append(f"{origin}: {exc}")
    if problems:
        raise ConfigError(problems)
    return tuple(items)


def _entry(entry: Any, origin: str) -> ExceptionItem:
    if not isinstance(entry, dict):
        raise ValueError("must be a table")
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}")
    rule_id, field, values = entry.get("rule_id"), entry.get("field"), entry.get("values")
    if not isinstance(rule_id, str) or not rule_id.strip():
        raise ValueError("'rule_id' must be a rule id or \"*\"")
    if not isinstance(field, str) or not field.strip():
        raise ValueError("'field' must be a field name")
    if not isinstance(values, list) or not values:
        raise ValueError("'values' must be a non-empty array")
    bad = [value for value in values if not isinstance(value, Value)]
    if bad:
        raise ValueError(f"'values' may hold strings, numbers and booleans only (got {bad[0]!r})")
    return _item(rule_id.strip(), field.strip(), values, origin)


def _item(rule_id: str, field: str, values: list[Any], origin: str) -> ExceptionItem:
    exact: list[Value] = []
    networks: list[str] = []
    for value in values:
        network = _network(value)
        if network is None:
            _check_exact(field, value)
            exact.append(value)
        else:
            networks.append(network)
    return ExceptionItem(rule_id, field, tuple(exact), tuple(networks), origin)


def _check_exact(field: str, value: Value) -> None:
    """Refuse at load what Elasticsearch would refuse in every execution: a value an `ip` field
    cannot hold (ECS names its ip fields `*.ip`; a `terms` query on an ip field fails the whole
    search with "is not an IP string literal"), and a range that is almost a CIDR."""
    text = str(value).strip()
    if _CIDR_LIKE.match(text):
        raise ValueError(f"{value!r} looks like a CIDR range but is not a valid one")
    if field == "ip" or field.endswith(".ip"):
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address or CIDR range, which the ip field {field} needs"
            ) from None


def unknown_rule_ids(exceptions: ExceptionList, rule_ids: Iterable[str]) -> list[ExceptionItem]:
    """The entries for a rule id that none of `rule_ids` has (a typo excepts nothing)."""
    known = set(rule_ids)
    return [item for item in exceptions.items if item.rule_id not in (ANY_RULE, *known)]


def _network(value: Value) -> str | None:
    """The normalised CIDR range `value` denotes, or None for an exact value.

    `IP/prefix` with a bad prefix is an error rather than an exact value nobody would match.
    """
    if not isinstance(value, str) or "/" not in value:
        return None
    address = value.strip().split("/", 1)[0]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return None  # not an IP range at all, e.g. a path
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not a valid CIDR range") from None
