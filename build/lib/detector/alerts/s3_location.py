"""S3 bucket and object of a CloudTrail ECS document (pure, never raises on bad input).

Sources, most trustworthy first (see notes/cloudtrail_ecs.md §1 and §4):

1. `aws.cloudtrail.flattened.request_parameters` {bucketName, key, prefix}: the real structure,
   but absent in `retain: minimal` mode and it may lack `key` (PutObject keeps it only in the
   object ARN);
2. `aws.cloudtrail.resources.arn`: `arn:aws:s3:::bucket` and `arn:aws:s3:::bucket/key`, in
   HashMap order, not input order; ListObjects names its object resource with `ARNPrefix`;
3. `aws.cloudtrail.request_parameters`: Java `Map.toString()`, which cannot be parsed safely
   because values may hold `", "`, `=` and braces; read best-effort;
4. the Host header (`Host` parameter, then `tls.client.server_name`) in virtual-hosted style,
   for the bucket only; a path-style host names no bucket.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

REQUEST_PARAMETERS = "aws.cloudtrail.request_parameters"
FLATTENED_PARAMETERS = "aws.cloudtrail.flattened.request_parameters"
RESOURCES = "aws.cloudtrail.resources"
SERVER_NAME = "tls.client.server_name"

# `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key` (any partition: aws, aws-cn, aws-us-gov).
_S3_ARN = re.compile(r"^arn:aws[a-z-]*:s3:::(?P<bucket>[^/]+)(?:/(?P<key>.*))?$", re.DOTALL)
# Virtual-hosted style: `<bucket>.s3.<region>.amazonaws.com`, `<bucket>.s3-<region>...`,
# `<bucket>.s3.dualstack...`, `<bucket>.s3-website-...`; bucket names may contain dots.
_VIRTUAL_HOST = re.compile(
    r"^(?P<bucket>[a-z0-9][a-z0-9.-]*?)\.s3(?:[.-][a-z0-9.-]*)?\.amazonaws\.com(?:\.cn)?(?::\d+)?$"
)
# Access points and Object Lambda hosts name an access point, not a bucket.
_NOT_A_BUCKET_HOST = re.compile(r"\.s3-(?:accesspoint|object-lambda)[.-]")
# A `, key=` separator of Map.toString(): keys are identifiers such as bucketName, Host,
# x-amz-copy-source, list-type.
_ENTRY_START = re.compile(r", (?=[A-Za-z][A-Za-z0-9_.:-]*=)")
_FIRST_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9_.:-]*)=")


@dataclass(frozen=True)
class S3Location:
    """Where an S3 request pointed; any part may be unknown."""

    bucket: str | None = None
    object_key: str | None = None
    prefix: str | None = None

    @property
    def uri(self) -> str | None:
        """`s3://bucket/key`, `s3://bucket/prefix*`, `s3://bucket`, or None without a bucket."""
        if self.bucket is None:
            return None
        if self.object_key is not None:
            return f"s3://{self.bucket}/{self.object_key}"
        if self.prefix is not None:
            return f"s3://{self.bucket}/{self.prefix}*"
        return f"s3://{self.bucket}"


def get_field(doc: Any, path: str) -> Any:
    """The value at a dotted path, through nested objects and dotted keys alike (else None)."""
    if not isinstance(doc, Mapping):
        return None
    if path in doc:
        return doc[path]
    head, _, rest = path.partition(".")
    while rest:
        if head in doc:
            found = get_field(doc[head], rest)
            if found is not None:
                return found
        step, _, rest = rest.partition(".")
        head = f"{head}.{step}"
    return None


def _text(value: Any) -> str | None:
    """A non-empty string from a scalar or a one-element list (old events: `host=[h]`)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def _split_entries(inner: str) -> list[str]:
    """Split at `, name=` outside nested `{}`/`[]`; plain split if the brackets do not balance."""
    chunks, start, depth = [], 0, 0
    for position, char in enumerate(inner):
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0 and _ENTRY_START.match(inner, position):
            chunks.append(inner[start:position])
            start = position + 2
    if depth:  # a value with a stray `{` or `[`: nesting cannot be trusted
        return _ENTRY_START.split(inner)
    return [*chunks, inner[start:]]


def parse_java_map(text: Any) -> dict[str, str]:
    """Top-level entries of a Java `Map.toString()` string, best-effort, never raising.

    Entries are split on `", "` followed by `name=` outside nested maps and lists, so commas,
    `=` and braces inside a value survive unless they look like a following entry
    (`key=a, b=c` cannot be told apart from two entries).
    Array values keep their brackets: `host=[s3.amazonaws.com]`.
    """
    if not isinstance(text, str):
        return {}
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        return {}
    entries: dict[str, str] = {}
    for chunk in _split_entries(body[1:-1]):
        match = _FIRST_KEY.match(chunk)
        if match is None:
            continue
        # The first occurrence wins: a later "key" may be text inside a nested value.
        entries.setdefault(match.group(1), chunk[match.end() :])
    return entries


def _unbracket(value: str | None) -> str | None:
    if value is not None and value.startswith("[") and value.endswith("]") and ", " not in value:
        return value[1:-1].strip() or None
    return value


def _resource_values(doc: Mapping[str, Any], key: str) -> Iterator[str]:
    """Every `aws.cloudtrail.resources[].<key>` (a list of objects, one object, or a list)."""
    resources = get_field(doc, RESOURCES)
    if resources is None:  # already flattened, as the `fields` API returns it
        resources = {key: get_field(doc, f"{RESOURCES}.{key}")}
    items = resources if isinstance(resources, list) else [resources]
    for item in items:
        value = get_field(item, key)
        for one in value if isinstance(value, list) else [value]:
            if isinstance(one, str):
                yield one


def _parse_arn(arn: str) -> tuple[str, str | None] | None:
    match = _S3_ARN.match(arn.strip())
    if match is None:
        return None
    return match.group("bucket"), match.group("key") or None


def _arns(doc: Mapping[str, Any], key: str) -> list[tuple[str, str | None]]:
    parsed = (_parse_arn(arn) for arn in _resource_values(doc, key))
    return [item for item in parsed if item is not None]


def bucket_from_host(host: Any) -> str | None:
    """The bucket of a virtual-hosted-style S3 host; None for path style or any other host."""
    name = _text(host)
    if name is None:
        return None
    name = name.lower()
    if _NOT_A_BUCKET_HOST.search(name):
        return None
    match = _VIRTUAL_HOST.match(name)
    return match.group("bucket") if match else None


@dataclass(frozen=True)
class _Sources:
    flattened: Mapping[str, Any]
    text: Mapping[str, str]
    buckets: list[tuple[str, str | None]]  # from `arn`
    prefixes: list[tuple[str, str | None]]  # from `ARNPrefix`
    hosts: tuple[Any, ...]


def _sources(doc: Mapping[str, Any]) -> _Sources:
    flattened = get_field(doc, FLATTENED_PARAMETERS)
    flat = flattened if isinstance(flattened, Mapping) else {}
    text = parse_java_map(get_field(doc, REQUEST_PARAMETERS))
    hosts = (flat.get("Host"), _unbracket(text.get("Host")), get_field(doc, SERVER_NAME))
    return _Sources(flat, text, _arns(doc, "arn"), _arns(doc, "ARNPrefix"), hosts)


def _param(sources: _Sources, name: str) -> str | None:
    return _text(sources.flattened.get(name)) or _unbracket(_text(sources.text.get(name)))


def _bucket(sources: _Sources) -> str | None:
    flat = _text(sources.flattened.get("bucketName"))
    if flat is not None:
        return flat
    # An object ARN names the bucket as well as a bucket ARN does.
    for bucket, _key in sources.buckets + sources.prefixes:
        return bucket
    text = _unbracket(_text(sources.text.get("bucketName")))
    if text is not None:
        return text
    for host in sources.hosts:
        found = bucket_from_host(host)
        if found is not None:
            return found
    return None


def _object_key(sources: _Sources, bucket: str | None) -> str | None:
    flat = _text(sources.flattened.get("key"))
    if flat is not None:
        return flat
    keys = sorted({key for name, key in sources.buckets if key and name == bucket})
    hinted = _unbracket(_text(sources.text.get("key")))
    if len(keys) > 1:
        # CopyObject names the source and the destination object: the request's `key` is the
        # destination; without it, drop the copy source, then take the first in sorted order.
        if hinted in keys:
            return hinted
        copy_source = _param(sources, "x-amz-copy-source") or ""
        keys = [key for key in keys if f"{bucket}/{key}" != copy_source.lstrip("/")] or keys
    return keys[0] if keys else hinted


def _prefix(sources: _Sources, bucket: str | None) -> str | None:
    prefix = _param(sources, "prefix")
    if prefix is not None:
        return prefix
    for name, key in sources.prefixes:
        if name == bucket and key:
            return key
    return None


def s3_location(doc: Any) -> S3Location:
    """Bucket, object key and listing prefix of an S3 event document (`_source`)."""
    if not isinstance(doc, Mapping):
        return S3Location()
    sources = _sources(doc)
    bucket = _bucket(sources)
    key = _object_key(sources, bucket)
    prefix = None if key is not None else _prefix(sources, bucket)
    return S3Location(bucket=bucket, object_key=key, prefix=prefix)
