"""Raw CloudTrail records (as CloudTrail writes them to S3), real and generated.

- `pipeline_pairs()`: each raw record of `../shared/data/cloudtrail/raw/*.event-original.ndjson`
  with the document Elastic's real pipeline made of it (`ecs/*-expected.json`);
- `LEFT_OUT`, `ADDED`, `flat(doc)`: how a mapped document is compared with an output;
- `INVICTUS_DIR`: 55 real CloudTrail log files (`{"Records": [...]}`), no anonymous access;
- `anonymous_record(...)`: a raw S3 data event shaped like the documented anonymous records
  (notes/cloudtrail_ecs.md §2 and §3): `userIdentity` `{"type": "AWSAccount", "principalId": "",
  "accountId": "anonymous"}` by default.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from tests.support.reference import REFERENCE

CLOUDTRAIL_DATA = REFERENCE / "data" / "cloudtrail"
INVICTUS_DIR = CLOUDTRAIL_DATA / "raw" / "invictus-ir_aws_dataset"
BUCKET_OWNER = "123456789012"

# Fields of the published outputs that the import does not produce, and why:
LEFT_OUT = (
    "source.geo.",  # the geoip processor needs MaxMind's databases (and the tests use test ones)
    "source.as.",
    "user_agent.name",  # the user_agent processor's parse; no rule reads more than `original`
    "user_agent.version",
    "user_agent.os.",
    "user_agent.device.",
    "actor.",  # the entity sub-pipeline of newer package versions
    "target.",
    "service.",
    "user.entity.",
    "user.target.entity.",
    "related.entity",
    "related.user",  # newer versions add access key ids to it
    "cloud.service.name",  # newer versions; its derivation is not published as a pipeline
    "event.created",  # the shipper's read time (the tests' simulated one)
    "tags",  # the tests' own tags (`actor_target_mapping`)
)
# Fields the import produces that older outputs lack: newer pipelines and the Agent add them.
ADDED = (
    "cloud.provider",
    "related.ip",
    "user.email",
    "event.dataset",
    "event.module",
    "data_stream.",
    "tags",
    "event.created",
)
MINIMAL = "copy-object-json-minimal"  # `_conf.retain: minimal` cuts the flattened copies down


def flat(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted path -> leaf value (lists kept whole)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def pipeline_pairs() -> list[tuple[str, str, dict[str, Any]]]:
    """(test name, raw line, expected ECS document) for every raw record with an output."""
    pairs: list[tuple[str, str, dict[str, Any]]] = []
    for raw in sorted((CLOUDTRAIL_DATA / "raw").glob("*.event-original.ndjson")):
        name = raw.name.removesuffix(".event-original.ndjson")
        expected_file = CLOUDTRAIL_DATA / "ecs" / f"{name}.log-expected.json"
        # The outputs end with a near-empty document for the test log's trailing empty line.
        expected = [
            doc
            for doc in json.loads(expected_file.read_text(encoding="utf-8"))["expected"]
            if "original" in doc.get("event", {})
        ]
        lines = [line for line in raw.read_text(encoding="utf-8").splitlines() if line.strip()]
        assert len(lines) == len(expected), raw
        pairs.extend(
            (f"{name}[{n}]", line, doc)
            for n, (line, doc) in enumerate(zip(lines, expected, strict=True))
        )
    return pairs


def _event_id(*parts: object) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def cloudtrail_time(moment: datetime) -> str:
    """`2025-01-15T12:00:00Z`, as CloudTrail writes `eventTime`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def anonymous_record(
    source: str,
    at: datetime,
    action: str = "GetObject",
    account_id: str = "anonymous",
    identity_type: str = "AWSAccount",
    error_code: str | None = None,
    bucket: str = "public-assets-example",
    key: str = "reports/q4.csv",
) -> dict[str, Any]:
    """One raw S3 data event; by default a successful anonymous GetObject over TLS."""
    host = f"{bucket}.s3.us-east-1.amazonaws.com"
    parameters: dict[str, Any] = {"bucketName": bucket, "Host": host, "key": key}
    if action == "ListObjects":
        parameters = {"list-type": "2", "bucketName": bucket, "Host": host, "prefix": ""}
    record: dict[str, Any] = {
        "eventVersion": "1.10",
        "userIdentity": {"type": identity_type, "principalId": "", "accountId": account_id},
        "eventTime": cloudtrail_time(at),
        "eventSource": "s3.amazonaws.com",
        "eventName": action,
        "awsRegion": "us-east-1",
        "sourceIPAddress": source,
        "userAgent": "[aws-cli/2.22.35 md/command#s3.cp]",
        "requestParameters": parameters,
        "responseElements": None,
        "additionalEventData": {"CipherSuite": "TLS_AES_128_GCM_SHA256", "bytesTransferredIn": 0},
        "requestID": _event_id("request", source, at, action)[:16].upper(),
        "eventID": _event_id(source, at, action, account_id, identity_type, error_code),
        "readOnly": action != "PutObject",
        "resources": [
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
            {"accountId": BUCKET_OWNER, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
        ],
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": BUCKET_OWNER,
        "eventCategory": "Data",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": host,
        },
    }
    if error_code is not None:
        record["errorCode"] = error_code
        record["errorMessage"] = "Access Denied"
    return record
