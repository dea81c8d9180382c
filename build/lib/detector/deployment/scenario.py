"""The demo's CloudTrail scenario: ECS documents as Elastic's AWS integration indexes them.

`scenario(end)` returns the documents of one deterministic story ending at `end`: eight days of
authenticated S3 and IAM traffic, anonymous reads of a public bucket by sources seen every day,
sources last seen eight or more days ago that come back, brand-new anonymous sources (a reader,
a lister, a writer, an IPv6 client) and failed anonymous attempts, which the rule ignores.
`index_template()` maps the demo index as the integration does (`ECS_MAPPINGS`:
keyword where it uses `constant_keyword`, which the smallest distributions lack), as a plain index.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# A namespace of the demo's own: `logs-aws.cloudtrail-default` is the data stream Elastic's AWS
# integration writes, and the built-in rule's `logs-aws.cloudtrail*` still reads this one.
NAMESPACE = "detectordemo"
INDEX = f"logs-aws.cloudtrail-{NAMESPACE}"
DEMO_MARKER = "newterms-detector-demo"
BUCKET_OWNER = "123456789012"
PUBLIC_BUCKET = "acme-public-assets"
PRIVATE_BUCKET = "acme-finance-reports"
CLI_AGENT = "[aws-cli/2.22.35 md/awscrt#0.23.8 ua/2.0 os/linux#6.8.0 md/command#s3.cp]"
BROWSER_AGENT = "[Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0]"
SDK_AGENT = "[Boto3/1.35.90 md/Botocore#1.35.90 ua/2.0 os/linux#6.8.0 lang/python#3.12.7]"
LIST_ACTIONS = frozenset({"ListObjects"})

_KEYWORD = {"type": "keyword"}
_DATE = {"type": "date"}
_FLATTENED = {"type": "flattened"}
_KEYWORD_AND_TEXT = {"type": "keyword", "ignore_above": 8191, "fields": {"text": {"type": "text"}}}


def _props(**fields: Any) -> dict[str, Any]:
    return {"properties": fields}


def _keywords(*names: str) -> dict[str, Any]:
    return {name: _KEYWORD for name in names}


_CLOUDTRAIL: dict[str, Any] = {
    "request_parameters": _KEYWORD_AND_TEXT,
    "response_elements": _KEYWORD_AND_TEXT,
    "additional_eventdata": {"type": "keyword", "fields": {"text": {"type": "text"}}},
    "service_event_details": {"type": "keyword", "fields": {"text": {"type": "text"}}},
    "read_only": {"type": "boolean"},
    "resources": _props(**_keywords("arn", "type", "account_id")),
    "user_identity": _props(
        session_context=_props(
            creation_date=_DATE,
            mfa_authenticated=_KEYWORD,
            session_issuer=_props(**_keywords("type", "arn", "account_id", "principal_id")),
        ),
        **_keywords("type", "arn", "access_key_id", "invoked_by"),
    ),
    "console_login": _props(
        additional_eventdata=_props(
            mfa_used={"type": "boolean"}, mobile_version={"type": "boolean"}, login_to=_KEYWORD
        )
    ),
    "flattened": _props(
        **{
            name: _FLATTENED
            for name in (
                "request_parameters",
                "response_elements",
                "additional_eventdata",
                "service_event_details",
                "digest",
                "insight_details",
            )
        }
    ),
    **_keywords(
        "recipient_account_id",
        "request_id",
        "event_type",
        "event_version",
        "event_category",
        "management_event",
        "error_code",
        "error_message",
        "vpc_endpoint_id",
        "shared_event_id",
    ),
}
# The ECS fields of Elastic's CloudTrail integration, typed as it types them (keyword where it
# uses `constant_keyword`, which the smallest distributions lack); other strings map to keyword
# like ECS dynamic fields. The tests' CloudTrail indices use it too.
ECS_MAPPINGS: dict[str, Any] = {
    "dynamic_templates": [
        {
            "strings_as_keyword": {
                "match_mapping_type": "string",
                "mapping": {"type": "keyword", "ignore_above": 1024},
            }
        }
    ],
    "properties": {
        "@timestamp": _DATE,
        "tags": _KEYWORD,
        "ecs": _props(version=_KEYWORD),
        "data_stream": _props(**_keywords("type", "dataset", "namespace")),
        "event": _props(
            created=_DATE,
            ingested=_DATE,
            original={"type": "keyword", "index": False, "doc_values": False},
            **_keywords("action", "provider", "outcome", "kind", "category", "type", "id"),
            **_keywords("dataset", "module"),
        ),
        "cloud": _props(
            account=_props(id=_KEYWORD),
            service=_props(name=_KEYWORD),
            **_keywords("provider", "region"),
        ),
        "source": _props(
            address=_KEYWORD,
            ip={"type": "ip"},
            geo=_props(
                location={"type": "geo_point"},
                **_keywords(
                    "city_name",
                    "continent_name",
                    "country_iso_code",
                    "country_name",
                    "region_iso_code",
                    "region_name",
                ),
            ),
            **{"as": _props(number={"type": "long"}, organization=_props(name=_KEYWORD))},
        ),
        "related": _props(ip={"type": "ip"}, **_keywords("user", "entity", "hash", "hosts")),
        "user": _props(**_keywords("id", "name", "email")),
        "user_agent": _props(
            device=_props(name=_KEYWORD),
            os=_props(**_keywords("name", "version", "full")),
            **_keywords("original", "name", "version"),
        ),
        "tls": _props(client=_props(server_name=_KEYWORD), **_keywords("cipher", "version")),
        "aws": _props(cloudtrail=_props(**_CLOUDTRAIL)),
    },
}

# The demo index: the integration's mapping, marked as the demo's.
MAPPINGS: dict[str, Any] = {"_meta": {"managed_by": DEMO_MARKER}, **ECS_MAPPINGS}


def index_template(index: str = INDEX) -> dict[str, Any]:
    """A composable template giving exactly `index` the integration's mapping, as a plain index.

    Its priority is above the built-in `logs` template (100) and Fleet's `logs-aws.cloudtrail`
    (200), so the demo gets a plain index even on a cluster that would make it a data stream.
    """
    return {
        "index_patterns": [index],
        "priority": 300,
        "template": {
            "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
            "mappings": MAPPINGS,
        },
        "_meta": {"managed_by": DEMO_MARKER},
    }


def template_name(index: str = INDEX) -> str:
    """The demo template's name for `index`."""
    return f"{DEMO_MARKER}-{index}"


@dataclass(frozen=True)
class Source:
    """A client address with the geo/AS enrichment the integration adds to public IPs."""

    address: str
    country: str
    organization: str
    agent: str = CLI_AGENT


# Documentation ranges only (RFC 5737, RFC 3849): nothing here points at a real host.
RECURRING = (
    Source("198.51.100.23", "United States", "Example CDN Inc.", BROWSER_AGENT),
    Source("198.51.100.61", "Germany", "Example Hosting GmbH", BROWSER_AGENT),
    Source("192.0.2.15", "Netherlands", "Example Transit B.V."),
)
RETURNING = (
    Source("203.0.113.77", "Brazil", "Example Telecom S.A."),
    Source("203.0.113.140", "Singapore", "Example Cloud Pte"),
)
NEW = (
    Source("192.0.2.201", "Russia", "Example Networks LLC"),
    Source("203.0.113.9", "Vietnam", "Example Broadband JSC"),
    Source("198.51.100.250", "United States", "Example VPS Inc.", SDK_AGENT),
    Source("2001:db8:4a::17", "France", "Example Mobile SA", BROWSER_AGENT),
)
FAILING = (Source("192.0.2.99", "China", "Example Datacenter Co."),)
EMPLOYEES = (("alice", "10.20.1.14"), ("bob", "10.20.1.57"), ("ci-deployer", "AWS Internal"))


def scenario(end: datetime) -> list[dict[str, Any]]:
    """Every document of the story, oldest first; the same `end` gives the same documents."""
    end = end.astimezone(UTC).replace(microsecond=0)
    docs = [*_benign(end), *_recurring(end), *_returning(end), *_new(end), *_failures(end)]
    return sorted(docs, key=lambda doc: (doc["@timestamp"], doc["event"]["id"]))


def demo_addresses() -> list[str]:
    """The anonymous sources of the story."""
    return [source.address for source in (*RECURRING, *RETURNING, *NEW, *FAILING)]


def _benign(end: datetime) -> list[dict[str, Any]]:
    docs = []
    for hours in range(0, 8 * 24, 3):
        for number, (user, address) in enumerate(EMPLOYEES):
            at = end - timedelta(hours=hours, minutes=7 + 11 * number)
            action = ("GetObject", "PutObject", "ListObjects")[(hours // 3 + number) % 3]
            docs.append(_authenticated(user, address, action, at, f"q{hours % 4 + 1}/ledger.csv"))
    return docs


def _recurring(end: datetime) -> list[dict[str, Any]]:
    docs = []
    for number, source in enumerate(RECURRING):
        for hours in range(1, 7 * 24, 10):  # every 10 hours over the last week, never older
            docs.append(
                _anonymous(source, "GetObject", end - timedelta(hours=hours, minutes=number))
            )
        docs.append(_anonymous(source, "GetObject", end - timedelta(minutes=31 + 7 * number)))
    return docs


def _returning(end: datetime) -> list[dict[str, Any]]:
    docs = []
    for number, source in enumerate(RETURNING):
        for days in (8 + number, 9 + number):
            docs.append(_anonymous(source, "GetObject", end - timedelta(days=days, hours=3)))
        docs.append(_anonymous(source, "GetObject", end - timedelta(minutes=44 - 9 * number)))
    return docs


def _new(end: datetime) -> list[dict[str, Any]]:
    reader, lister, writer, mobile = NEW
    return [
        _anonymous(reader, "ListObjects", end - timedelta(minutes=52)),
        _anonymous(reader, "GetObject", end - timedelta(minutes=51), key="exports/customers.csv"),
        _anonymous(reader, "GetObject", end - timedelta(minutes=50), key="exports/orders.csv"),
        _anonymous(lister, "ListObjects", end - timedelta(minutes=23)),
        _anonymous(writer, "PutObject", end - timedelta(minutes=12), key="uploads/payload.html"),
        _anonymous(mobile, "GetObject", end - timedelta(minutes=6), key="img/logo.png"),
    ]


def _failures(end: datetime) -> list[dict[str, Any]]:
    (prober,) = FAILING
    denied = ("AccessDenied", "Access Denied")
    missing = ("NoSuchKey", "The specified key does not exist.")
    docs = [
        _anonymous(
            prober,
            action,
            end - timedelta(minutes=minutes),
            PRIVATE_BUCKET,
            "2024/payroll.xlsx",
            denied,
        )
        for action, minutes in (("ListObjects", 38), ("GetObject", 37), ("GetObject", 17))
    ]
    docs.append(
        _anonymous(
            NEW[1], "GetObject", end - timedelta(minutes=22), key="backup.zip", error=missing
        )
    )
    return docs


def _anonymous(
    source: Source,
    action: str,
    at: datetime,
    bucket: str = PUBLIC_BUCKET,
    key: str = "index.html",
    error: tuple[str, str] | None = None,
) -> dict[str, Any]:
    doc = _s3_event(source.address, action, at, bucket, key, error)
    doc["cloud"]["account"] = {"id": "anonymous"}
    doc["aws"]["cloudtrail"]["user_identity"] = {"type": "AWSAccount"}
    doc["user_agent"] = {"original": source.agent}
    doc["source"]["geo"] = {"country_name": source.country}
    doc["source"]["as"] = {"organization": {"name": source.organization}}
    return doc


def _authenticated(user: str, address: str, action: str, at: datetime, key: str) -> dict[str, Any]:
    doc = _s3_event(address, action, at, PRIVATE_BUCKET, key, None)
    arn = f"arn:aws:iam::{BUCKET_OWNER}:user/{user}"
    doc["cloud"]["account"] = {"id": BUCKET_OWNER}
    doc["user"] = {"id": f"AIDA{_digest(user)[:16].upper()}", "name": user}
    doc["aws"]["cloudtrail"]["user_identity"] = {
        "type": "IAMUser",
        "arn": arn,
        "access_key_id": f"AKIA{_digest(user, 'key')[:16].upper()}",
    }
    doc["user_agent"] = {"original": SDK_AGENT}
    return doc


def _s3_event(
    address: str,
    action: str,
    at: datetime,
    bucket: str,
    key: str,
    error: tuple[str, str] | None,
) -> dict[str, Any]:
    host = f"{bucket}.s3.us-east-1.amazonaws.com"
    parameters: dict[str, Any] = {"bucketName": bucket, "Host": host}
    if action in LIST_ACTIONS:
        parameters.update({"list-type": "2", "encoding-type": "url"})
    else:
        parameters["key"] = key
    event_id = _uuid(address, action, at.isoformat(), bucket, key)
    doc: dict[str, Any] = {
        "@timestamp": _iso(at),
        "tags": [DEMO_MARKER],  # how the demo tells its documents from anyone else's
        "ecs": {"version": "8.11.0"},
        "data_stream": {"type": "logs", "dataset": "aws.cloudtrail", "namespace": NAMESPACE},
        "event": {
            "action": action,
            "category": ["file"],
            "created": _iso(at + timedelta(minutes=4)),
            "dataset": "aws.cloudtrail",
            "id": event_id,
            # Fleet's final pipeline stamps the ingest time: CloudTrail delivers within minutes.
            "ingested": _iso(at + timedelta(seconds=45 + int(event_id[:2], 16) % 60)),
            "kind": "event",
            "module": "aws",
            "outcome": "failure" if error else "success",
            "provider": "s3.amazonaws.com",
            "type": ["change"] if action.startswith("Put") else ["info"],
        },
        "cloud": {"provider": "aws", "region": "us-east-1", "service": {"name": "s3"}},
        "source": {"address": address},
        "tls": {
            "cipher": "TLS_AES_128_GCM_SHA256",
            "client": {"server_name": host},
            "version": "1.3",
        },
        "aws": {"cloudtrail": _cloudtrail(action, bucket, key, parameters, event_id, error)},
    }
    if _is_ip(address):
        doc["source"]["ip"] = address
        doc["related"] = {"ip": [address]}
    return doc


def _cloudtrail(
    action: str,
    bucket: str,
    key: str,
    parameters: dict[str, Any],
    event_id: str,
    error: tuple[str, str] | None,
) -> dict[str, Any]:
    bucket_arn = f"arn:aws:s3:::{bucket}"
    resources = [{"account_id": BUCKET_OWNER, "arn": bucket_arn, "type": "AWS::S3::Bucket"}]
    if action not in LIST_ACTIONS:
        resources.insert(0, {"arn": f"{bucket_arn}/{key}", "type": "AWS::S3::Object"})
    extra = {"bytesTransferredIn": 0, "bytesTransferredOut": 0 if error else 5120}
    trail: dict[str, Any] = {
        "event_category": "Data",
        "event_type": "AwsApiCall",
        "event_version": "1.10",
        "read_only": not action.startswith(("Put", "Delete")),
        "recipient_account_id": BUCKET_OWNER,
        "request_id": event_id.replace("-", "")[:16].upper(),
        "request_parameters": _map_string(parameters),
        "additional_eventdata": _map_string(extra),
        "resources": resources,
        "flattened": {"request_parameters": parameters, "additional_eventdata": extra},
    }
    if error:
        trail["error_code"], trail["error_message"] = error
    return trail


def _map_string(values: dict[str, Any]) -> str:
    """Java's `Map.toString()` as the pipeline writes it (HashMap order, capacity 16)."""
    keys = sorted(values, key=lambda key: _java_hash(key) & 15)
    return "{" + ", ".join(f"{key}={values[key]}" for key in keys) + "}"


def _java_hash(text: str) -> int:
    value = 0
    for char in text:
        value = (31 * value + ord(char)) & 0xFFFFFFFF
    return value ^ (value >> 16)


def _is_ip(address: str) -> bool:
    return address[:1].isdigit() or ":" in address


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _uuid(*parts: object) -> str:
    d = _digest(*parts)
    return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:32]}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + "000Z"
