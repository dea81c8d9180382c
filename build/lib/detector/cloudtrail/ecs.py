"""A raw CloudTrail record turned into the ECS document Elastic's `aws.cloudtrail` pipeline makes.

Pure: `to_ecs(record, namespace)` is the integration's ingest pipeline (`default.yml`, see
`../shared/notes/cloudtrail_ecs.md` §1 and §4) restated in Python, in its order: drop null and
`""` values recursively, rename, derive (`source.ip`, `event.outcome`, categorisation, `tls.*`),
and keep `event.original` (as with the `preserve_original_event` tag). The fields the Agent's
input adds to a Fleet data stream are set too (`event.dataset`, `event.module`, `data_stream.*`),
since the rules query them.

Deliberately not produced:
- `event.ingested`: the pipeline does not set it, Fleet's final pipeline does, at ingest time.
  For old logs imported now it would put every event "now"; without it the rules' time field
  (`timestamp_override = event.ingested`) falls back to `@timestamp`, the event time, so a
  backfill over the imported time range sees the events when they happened;
- `source.geo.*`, `source.as.*` (the `geoip` processor needs MaxMind's databases), parsed
  `user_agent.*` but `original` (no rule reads them), the entity fields of newer pipelines
  (`actor.*`, `target.*`, `related.entity`, `user.entity`, `entity.*`), CloudTrail digest and
  Insights fields, and the `_conf.retain: minimal` mode (the full flattened copies are kept).

Newer-pipeline behaviours followed, as the published outputs show them: `cloud.account.id`
falls back to `recipientAccountId`, `cloud.provider` is `aws`, a user name with `@` is
`user.email`, `related.ip` holds `source.ip`,
the S3 object actions are categorised, placeholder `tlsDetails` are dropped and a `tlsVersion`
without `v` is the version itself, `sessionCredentialFromConsole` is kept.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from detector.cloudtrail.categories import CATEGORIES
from detector.cloudtrail.javamap import clean, hashmap_order, java_length, to_java_string
from detector.errors import RecordError
from detector.times import as_utc, iso

DATASET = "aws.cloudtrail"
ECS_VERSION = "8.11.0"
PRESERVE_ORIGINAL = "preserve_original_event"
# The Painless script keeps a flattened copy only when the string is shorter (Lucene's term limit).
FLATTENED_LIMIT = 32766

# The `date` processor's ISO8601: extended format only (`20131102T010628Z` fails and is lost).
_ISO8601 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?$"
)

# Renames of `default.yml`, in its order: raw path -> ECS path.
_RENAMES = (
    ("eventVersion", "aws.cloudtrail.event_version"),
    ("userIdentity.type", "aws.cloudtrail.user_identity.type"),
    ("userIdentity.userName", "user.name"),
    ("userIdentity.principalId", "user.id"),
    ("userIdentity.arn", "aws.cloudtrail.user_identity.arn"),
    ("userIdentity.accountId", "cloud.account.id"),
    ("userIdentity.accessKeyId", "aws.cloudtrail.user_identity.access_key_id"),
    (
        "userIdentity.sessionContext.attributes.mfaAuthenticated",
        "aws.cloudtrail.user_identity.session_context.mfa_authenticated",
    ),
    (
        "userIdentity.sessionContext.sessionIssuer.type",
        "aws.cloudtrail.user_identity.session_context.session_issuer.type",
    ),
    # Only assumed roles have it; a rename onto an existing user.name fails and is ignored.
    ("userIdentity.sessionContext.sessionIssuer.userName", "user.name"),
    (
        "userIdentity.sessionContext.sessionIssuer.principalId",
        "aws.cloudtrail.user_identity.session_context.session_issuer.principal_id",
    ),
    (
        "userIdentity.sessionContext.sessionIssuer.arn",
        "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
    ),
    (
        "userIdentity.sessionContext.sessionIssuer.accountId",
        "aws.cloudtrail.user_identity.session_context.session_issuer.account_id",
    ),
    ("userIdentity.invokedBy", "aws.cloudtrail.user_identity.invoked_by"),
    ("eventSource", "event.provider"),
    ("eventName", "event.action"),
    ("eventCategory", "aws.cloudtrail.event_category"),
    ("awsRegion", "cloud.region"),
    ("sourceIPAddress", "source.address"),
    ("userAgent", "user_agent.original"),
    ("errorCode", "aws.cloudtrail.error_code"),
    ("errorMessage", "aws.cloudtrail.error_message"),
    ("requestID", "aws.cloudtrail.request_id"),
    ("eventID", "event.id"),
    ("eventType", "aws.cloudtrail.event_type"),
    ("apiVersion", "aws.cloudtrail.api_version"),
    ("managementEvent", "aws.cloudtrail.management_event"),
    ("readOnly", "aws.cloudtrail.read_only"),
    ("recipientAccountId", "aws.cloudtrail.recipient_account_id"),
    # Real records spell it `sharedEventID`: the pipeline's `sharedEventId` never fills it.
    ("sharedEventId", "aws.cloudtrail.shared_event_id"),
    ("vpcEndpointId", "aws.cloudtrail.vpc_endpoint_id"),
    ("sessionCredentialFromConsole", "aws.cloudtrail.session_credential_from_console"),
)
# requestParameters.toString() and its flattened copy, and the same for three more objects.
_JAVA_STRINGS = (
    ("requestParameters", "request_parameters"),
    ("responseElements", "response_elements"),
    ("additionalEventData", "additional_eventdata"),
    ("serviceEventDetails", "service_event_details"),
)
# `set` processors at the end of the pipeline: ECS path <- flattened path.
_TARGETS = (
    ("group.id", "response_elements.group.groupId"),
    ("user.target.id", "response_elements.user.userId"),
    ("user.changes.name", "request_parameters.newUserName"),
    ("group.name", "request_parameters.groupName"),
    ("user.target.name", "request_parameters.userName"),
)


def index_name(namespace: str) -> str:
    """The data stream name Fleet would use: `logs-aws.cloudtrail-<namespace>`."""
    return f"logs-{DATASET}-{namespace}"


def to_ecs(
    record: Any, namespace: str, original: str | None = None, created: datetime | None = None
) -> dict[str, Any]:
    """The ECS document of one raw CloudTrail record; `original` is its raw text (default: the
    record as compact JSON), `created` the read time (`event.created`, default: none).

    Raises `RecordError` when the record is not an object or lacks a usable `eventID` or
    `eventTime` (the document's `_id` and `@timestamp`).
    """
    if not isinstance(record, Mapping):
        raise RecordError(f"a CloudTrail record is a JSON object, not {type(record).__name__}")
    raw = clean(record) or {}
    doc: dict[str, Any] = {}
    _put(doc, "@timestamp", _timestamp(raw))
    _require_id(raw)
    if created is not None:
        _put(doc, "event.created", iso(created))
    _put(doc, "ecs.version", ECS_VERSION)
    _put(doc, "event.original", original if original is not None else _compact(record))
    _put(doc, "tags", [PRESERVE_ORIGINAL])
    _identity_and_renames(raw, doc)
    _source(doc)
    _user_email(doc)
    _java_strings(raw, doc)
    _resources(raw, doc)
    _related_users(raw, doc)
    _console_login(raw, doc)
    _categorise(doc)
    _targets(doc)
    _tls(raw, doc)
    _agent_fields(doc, namespace)
    return doc


def _require_id(raw: Mapping[str, Any]) -> None:
    event_id = raw.get("eventID")
    if not isinstance(event_id, str) or not event_id.strip():
        raise RecordError("no eventID (the document id comes from it)")
    if len(event_id.encode("utf-8")) > 512:
        raise RecordError("eventID longer than the 512 bytes of an Elasticsearch id")


def _timestamp(raw: Mapping[str, Any]) -> str:
    moment = parse_iso8601(raw.get("eventTime"))
    if moment is None:
        raise RecordError(f"no ISO-8601 eventTime (got {raw.get('eventTime')!r})")
    return iso(moment)


def parse_iso8601(value: Any) -> datetime | None:
    """A time as the `date` processor's ISO8601 format reads it (UTC without an offset)."""
    if not isinstance(value, str):
        return None
    match = _ISO8601.match(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    text = f"{year}-{month}-{day}T{hour or '00'}:{minute or '00'}:{second or '00'}"
    if fraction:
        text += "." + fraction[:6].ljust(6, "0")
    zone = zone or "Z"
    try:
        moment = datetime.fromisoformat(text + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return None
    return as_utc(moment)


def _compact(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def _get(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _identity_and_renames(raw: Mapping[str, Any], doc: dict[str, Any]) -> None:
    for source, target in _RENAMES:
        value = _get(raw, source)
        if value is not None and _get(doc, target) is None:
            # `set` renders eventName through a template; the others keep their JSON type.
            _put(doc, target, str(value) if source in ("eventName", "userAgent") else value)
    creation = parse_iso8601(_get(raw, "userIdentity.sessionContext.attributes.creationDate"))
    if creation is not None:
        _put(doc, "aws.cloudtrail.user_identity.session_context.creation_date", iso(creation))
    recipient = raw.get("recipientAccountId")
    if _get(doc, "cloud.account.id") is None and recipient is not None:
        _put(doc, "cloud.account.id", recipient)  # newer pipelines (AWSService records)
    _put(doc, "cloud.provider", "aws")


def _source(doc: dict[str, Any]) -> None:
    """`source.ip` only when the whole address is one IP literal (grok `^%{IP}$`), as written."""
    address = _get(doc, "source.address")
    if isinstance(address, str) and is_ip_literal(address):
        _put(doc, "source.ip", address)
        _put(doc, "related.ip", [address])


def _user_email(doc: dict[str, Any]) -> None:
    """Newer pipelines copy a user name that is an email address to `user.email`."""
    name = _get(doc, "user.name")
    if isinstance(name, str) and "@" in name:
        _put(doc, "user.email", name)


def is_ip_literal(text: str) -> bool:
    """One IPv4 or IPv6 address and nothing else (no zone: Elasticsearch's `ip` refuses it)."""
    if "%" in text or text != text.strip():
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _java_strings(raw: Mapping[str, Any], doc: dict[str, Any]) -> None:
    for source, target in _JAVA_STRINGS:
        value = raw.get(source)
        if value is None:
            continue
        text = to_java_string(value)
        _put(doc, f"aws.cloudtrail.{target}", text)
        if java_length(text) < FLATTENED_LIMIT:
            _put(doc, f"aws.cloudtrail.flattened.{target}", value)


def _resources(raw: Mapping[str, Any], doc: dict[str, Any]) -> None:
    """`ARN` -> `arn`, `accountId` -> `account_id`, deduplicated on arn_account_type in a
    HashMap, so the list comes out in that map's order."""
    resources = raw.get("resources")
    if not isinstance(resources, list):
        if resources is not None:
            _put(doc, "aws.cloudtrail.resources", resources)
        return
    unique: dict[str, dict[str, Any]] = {}
    for original in resources:
        if not isinstance(original, Mapping):
            continue
        resource = dict(original)
        if "ARN" in resource:
            resource["arn"] = resource.pop("ARN")
        if "accountId" in resource:
            resource["account_id"] = resource.pop("accountId")
        key = "_".join(str(resource.get(name, "")) for name in ("arn", "account_id", "type"))
        unique[key] = resource
    _put(doc, "aws.cloudtrail.resources", [unique[key] for key in hashmap_order(list(unique))])


def _related_users(raw: Mapping[str, Any], doc: dict[str, Any]) -> None:
    users: list[str] = []
    for value in (
        _get(raw, "userIdentity.userName"),
        _get(raw, "requestParameters.userName"),
        _get(raw, "requestParameters.newUserName"),
    ):
        if value is not None and str(value) not in users:
            users.append(str(value))
    if users:
        _put(doc, "related.user", users)


def _console_login(raw: Mapping[str, Any], doc: dict[str, Any]) -> None:
    if raw.get("eventName") != "ConsoleLogin":
        return
    extra = _get(doc, "aws.cloudtrail.flattened.additional_eventdata")
    if not isinstance(extra, dict):
        return
    fields: dict[str, Any] = {}
    if extra.get("MobileVersion") is not None:
        fields["mobile_version"] = extra["MobileVersion"] != "No"
    if extra.get("LoginTo") is not None:
        fields["login_to"] = extra["LoginTo"]
    if extra.get("MFAUsed") is not None:
        fields["mfa_used"] = extra["MFAUsed"] != "No"
    if fields:
        _put(doc, "aws.cloudtrail.console_login.additional_eventdata", fields)


def _categorise(doc: dict[str, Any]) -> None:
    """kind `event`, type `info`; `failure` on any error code or message (even `"200"`);
    ConsoleLogin takes its response's outcome; then the per-action table."""
    _put(doc, "event.kind", "event")
    _put(doc, "event.type", ["info"])
    failed = (
        _get(doc, "aws.cloudtrail.error_code") is not None
        or _get(doc, "aws.cloudtrail.error_message") is not None
    )
    _put(doc, "event.outcome", "failure" if failed else "success")
    action = _get(doc, "event.action")
    login = _get(doc, "aws.cloudtrail.flattened.response_elements.ConsoleLogin")
    if action == "ConsoleLogin" and login is not None:
        _put(doc, "event.outcome", str(login).lower())
    if action in CATEGORIES:
        category, types = CATEGORIES[action]
        _put(doc, "event.category", list(category))
        _put(doc, "event.type", list(types))


def _targets(doc: dict[str, Any]) -> None:
    for target, source in _TARGETS:
        value = _get(doc, f"aws.cloudtrail.flattened.{source}")
        if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "":
            _put(doc, target, str(value))


def _tls(raw: Mapping[str, Any], doc: dict[str, Any]) -> None:
    details = raw.get("tlsDetails")
    if not isinstance(details, Mapping) or details.get("tlsVersion") == "tlsVersion":
        return  # newer pipelines drop placeholder details (`tlsVersion: "tlsVersion"`)
    version = details.get("tlsVersion")
    if isinstance(version, str):
        # dissect `%{tls.version_protocol}v%{tls.version}`, then lowercase the protocol.
        protocol, separator, number = version.partition("v")
        if separator:
            _put(doc, "tls.version_protocol", protocol.lower())
            _put(doc, "tls.version", number)
        else:
            _put(doc, "tls.version", version)
    if details.get("cipherSuite") is not None:
        _put(doc, "tls.cipher", details["cipherSuite"])
    if details.get("clientProvidedHostHeader") is not None:
        _put(doc, "tls.client.server_name", details["clientProvidedHostHeader"])


def _agent_fields(doc: dict[str, Any], namespace: str) -> None:
    """What the Agent's input adds to each document of a Fleet data stream (the rules query
    `event.dataset` or `data_stream.dataset`)."""
    _put(doc, "event.dataset", DATASET)
    _put(doc, "event.module", "aws")
    _put(doc, "data_stream", {"type": "logs", "dataset": DATASET, "namespace": namespace})
