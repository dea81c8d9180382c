"""CloudTrail test data in ECS form, as Elastic's AWS integration indexes it.

- `INDEX_BODY`: settings and mappings of a CloudTrail index; the mappings are the package's
  `detector.cloudtrail.template.ECS_MAPPINGS` (the integration's fields, typed as it types them;
  other
  strings map to keyword like ECS dynamic fields).
- `anonymous_s3_event(...)`: one S3 data event shaped like the integration's output.
- `create_index(elastic, name)`, `index_documents(elastic, name, docs)`: put them in Elasticsearch.
- `ecs_documents()`: the real ECS documents of the integration's pipeline tests, all negatives
  for the anonymous-access rule, read from `../shared/data/cloudtrail/ecs/` beside the checkout.

Differences from a real Fleet index, because the test distribution lacks the modules:
`event.dataset`, `event.module` and `data_stream.*` are `keyword` (not `constant_keyword`), so
documents carry them in `_source`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from detector.cloudtrail.javamap import clean, to_java_string
from detector.cloudtrail.template import ECS_MAPPINGS
from tests.support.reference import REFERENCE

if TYPE_CHECKING:
    from detector.es.client import Elastic

ECS_DATA_DIR = REFERENCE / "data" / "cloudtrail" / "ecs"

DEFAULT_TIME = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
BUCKET_OWNER = "123456789012"
AWS_CLI_AGENT = (
    "[aws-cli/2.22.35 md/awscrt#0.23.8 ua/2.0 os/linux#6.8.0-51-generic md/arch#x86_64 "
    "lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe "
    "md/distrib#ubuntu.24 md/prompt#off md/command#s3.cp]"
)
LIST_ACTIONS = frozenset({"ListObjects", "ListObjectsV2", "ListBucket", "ListObjectVersions"})
READ_ACTIONS = LIST_ACTIONS | {"GetObject", "HeadObject", "HeadBucket", "GetObjectAcl"}

MAPPINGS: dict[str, Any] = ECS_MAPPINGS


INDEX_BODY: dict[str, Any] = {
    "settings": {"number_of_shards": 1, "number_of_replicas": 0},
    "mappings": MAPPINGS,
}


def java_map_string(values: dict[str, Any]) -> str:
    """`Map.toString()` of a Java HashMap, as the pipeline writes `request_parameters`
    (`detector.cloudtrail.javamap`, which the import uses: keys in HashMap bucket order)."""
    return to_java_string(clean(values))


def iso(moment: datetime) -> str:
    """`2025-01-15T12:00:00.000Z`, the way the pipeline writes `@timestamp`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _stable_id(*parts: object) -> str:
    digest = _digest(*parts)
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def _request_parameters(action: str, bucket: str, key: str, host: str) -> dict[str, Any]:
    if action in LIST_ACTIONS:
        return {"list-type": "2", "bucketName": bucket, "encoding-type": "url", "Host": host}
    return {"bucketName": bucket, "Host": host, "key": key}


def _resources(action: str, bucket: str, key: str) -> list[dict[str, str]]:
    bucket_arn = f"arn:aws:s3:::{bucket}"
    resource = {"account_id": BUCKET_OWNER, "arn": bucket_arn, "type": "AWS::S3::Bucket"}
    if action in LIST_ACTIONS:
        return [resource]
    return [{"arn": f"{bucket_arn}/{key}", "type": "AWS::S3::Object"}, resource]


def _event_type(action: str) -> list[str]:
    if action.startswith(("Put", "Copy")):
        return ["change"]
    if action.startswith("Delete"):
        return ["deletion"]
    return ["info"]


def _cloudtrail(
    action: str, bucket: str, key: str, outcome: str, identity_type: str
) -> dict[str, Any]:
    host = f"{bucket}.s3.us-east-1.amazonaws.com"
    parameters = _request_parameters(action, bucket, key, host)
    extra = {
        "CipherSuite": "TLS_AES_128_GCM_SHA256",
        "bytesTransferredIn": 0,
        "x-amz-id-2": "Qm9ndXNJZDJGb3JUZXN0c09ubHk=",
        "bytesTransferredOut": 0 if outcome != "success" or action != "GetObject" else 5120,
    }
    trail: dict[str, Any] = {
        "additional_eventdata": java_map_string(extra),
        "event_category": "Data",
        "event_type": "AwsApiCall",
        "event_version": "1.10",
        "flattened": {"additional_eventdata": extra, "request_parameters": parameters},
        "read_only": action in READ_ACTIONS,
        "recipient_account_id": BUCKET_OWNER,
        "request_id": _digest(action, bucket, key)[:16].upper(),
        "request_parameters": java_map_string(parameters),
        "resources": _resources(action, bucket, key),
        "user_identity": {"type": identity_type},
    }
    if outcome != "success":
        trail["error_code"] = "AccessDenied"
        trail["error_message"] = "Access Denied"
    return trail


def anonymous_s3_event(
    source_address: str,
    action: str = "GetObject",
    at: datetime = DEFAULT_TIME,
    ingested: datetime | timedelta | None = timedelta(0),
    bucket: str = "public-assets-example",
    key: str = "reports/2024/q4.csv",
    outcome: str = "success",
    account_id: str | None = "anonymous",
    identity_type: str | None = "AWSAccount",
    provider: str = "s3.amazonaws.com",
    dataset: str | None = "aws.cloudtrail",
    user_agent: str = AWS_CLI_AGENT,
) -> dict[str, Any]:
    """One S3 data event in ECS form; by default an anonymous, successful GetObject.

    `ingested` is an absolute time, a delay after `at` (default: none), or None for no
    `event.ingested` (documents indexed without Fleet's final pipeline). `account_id` and
    `identity_type` set to None leave those fields out. `dataset=None` leaves out
    `event.dataset`, `event.module` and `data_stream.*`, as in the pipeline-test outputs.
    """
    event: dict[str, Any] = {
        "action": action,
        "category": ["file"],
        "created": iso(at),
        "id": _stable_id(source_address, action, at, bucket, key, outcome, account_id),
        "kind": "event",
        "outcome": outcome,
        "provider": provider,
        "type": _event_type(action),
    }
    if isinstance(ingested, timedelta):
        ingested = at + ingested
    if ingested is not None:
        event["ingested"] = iso(ingested)
    doc: dict[str, Any] = {
        "@timestamp": iso(at),
        "aws": {"cloudtrail": _cloudtrail(action, bucket, key, outcome, identity_type or "")},
        "cloud": {"provider": "aws", "region": "us-east-1", "service": {"name": "s3"}},
        "ecs": {"version": "8.11.0"},
        "event": event,
        "source": {"address": source_address},
        "tls": {
            "cipher": "TLS_AES_128_GCM_SHA256",
            "client": {"server_name": f"{bucket}.s3.us-east-1.amazonaws.com"},
            "version": "1.3",
            "version_protocol": "tls",
        },
        "user_agent": {"original": user_agent},
    }
    _set_optional(doc, source_address, account_id, identity_type, dataset)
    return doc


def _set_optional(
    doc: dict[str, Any],
    source_address: str,
    account_id: str | None,
    identity_type: str | None,
    dataset: str | None,
) -> None:
    if _is_ip(source_address):
        doc["source"]["ip"] = source_address
        doc["related"] = {"ip": [source_address]}
    if account_id is not None:
        doc["cloud"]["account"] = {"id": account_id}
    if identity_type is None:
        del doc["aws"]["cloudtrail"]["user_identity"]
    if dataset is not None:
        doc["event"]["dataset"] = dataset
        doc["event"]["module"] = dataset.split(".", 1)[0]
        doc["data_stream"] = {"type": "logs", "dataset": dataset, "namespace": "default"}


def ecs_documents() -> list[dict[str, Any]]:
    """The real ECS documents produced by Elastic's CloudTrail pipeline tests (all negatives)."""
    if not ECS_DATA_DIR.is_dir():
        raise FileNotFoundError(f"shared test data not found at {ECS_DATA_DIR.resolve()}")
    docs: list[dict[str, Any]] = []
    for path in sorted(ECS_DATA_DIR.glob("*.json")):
        docs.extend(json.loads(path.read_text(encoding="utf-8"))["expected"])
    return docs


def with_dataset(doc: dict[str, Any], dataset: str = "aws.cloudtrail") -> dict[str, Any]:
    """A copy of `doc` with the fields the Agent input adds (`event.dataset`, `data_stream.*`)."""
    copy: dict[str, Any] = json.loads(json.dumps(doc))
    copy.setdefault("event", {})["dataset"] = dataset
    copy["event"]["module"] = dataset.split(".", 1)[0]
    copy["data_stream"] = {"type": "logs", "dataset": dataset, "namespace": "default"}
    return copy


def create_index(elastic: Elastic, name: str) -> None:
    """Create a CloudTrail index `name` with the integration's field types."""
    elastic.call(lambda es: es.indices.create(index=name, body=INDEX_BODY))


def index_documents(elastic: Elastic, name: str, docs: list[dict[str, Any]]) -> list[str]:
    """Index `docs` into `name` (ids `doc-0`, `doc-1`...), searchable on return; returns the ids."""
    ids = {f"doc-{number}": doc for number, doc in enumerate(docs)}
    elastic.bulk_create(name, ids, refresh=True)
    return list(ids)
