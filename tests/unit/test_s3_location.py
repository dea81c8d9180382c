"""S3 bucket/object extraction from CloudTrail ECS documents (notes/cloudtrail_ecs.md §1, §4)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from detector.alerts.s3_location import (
    S3Location,
    bucket_from_host,
    get_field,
    parse_java_map,
    s3_location,
)
from tests.support.cloudtrail import anonymous_s3_event, ecs_documents, java_map_string


def _real(action: str) -> dict[str, Any]:
    """The first real ECS document (Elastic's pipeline-test output) with this event.action."""
    for doc in ecs_documents():
        if doc.get("event", {}).get("action") == action:
            return doc
    raise LookupError(action)


def _trail(**cloudtrail: Any) -> dict[str, Any]:
    return {"aws": {"cloudtrail": cloudtrail}}


BUCKET_ARN = {"account_id": "1", "arn": "arn:aws:s3:::b", "type": "AWS::S3::Bucket"}


def _object_arn(key: str, bucket: str = "b") -> dict[str, str]:
    return {"arn": f"arn:aws:s3:::{bucket}/{key}", "type": "AWS::S3::Object"}


# --- flattened request parameters --------------------------------------------------------


def test_anonymous_get_object_reads_the_flattened_parameters() -> None:
    location = s3_location(anonymous_s3_event("203.0.113.7", bucket="pub", key="a/b.csv"))
    assert location == S3Location(bucket="pub", object_key="a/b.csv")
    assert location.uri == "s3://pub/a/b.csv"


def test_flattened_wins_over_the_other_sources() -> None:
    doc = _trail(
        flattened={"request_parameters": {"bucketName": "flat", "key": "flat-key"}},
        request_parameters="{bucketName=text, key=text-key}",
        resources=[_object_arn("arn-key", "arn")],
    )
    assert s3_location(doc) == S3Location("flat", "flat-key")


@pytest.mark.reference_data
def test_real_put_object_takes_the_key_from_the_object_arn() -> None:
    # The integration's PutObject keeps no `key` parameter; only the object ARN names it.
    assert s3_location(_real("PutObject")) == S3Location(
        "elastic-cspm-cloudtrail-test-bucket", "test.json"
    )


@pytest.mark.reference_data
def test_real_copy_object_names_the_destination_object() -> None:
    assert s3_location(_real("CopyObject")) == S3Location(
        "elastic-cspm-cloudtrail-test-bucket", "test-copy-object/README-copy.md"
    )


@pytest.mark.reference_data
def test_real_copy_object_in_retain_minimal_mode_still_finds_bucket_and_key() -> None:
    docs = [doc for doc in ecs_documents() if doc.get("event", {}).get("action") == "CopyObject"]
    minimal = [
        doc
        for doc in docs
        if "request_parameters" not in doc["aws"]["cloudtrail"].get("flattened", {})
    ]
    assert minimal, "the retain:minimal CopyObject has no flattened request_parameters"
    assert s3_location(minimal[0]) == S3Location(
        "elastic-cspm-cloudtrail-test-bucket", "test-copy-object/README-copy.md"
    )


@pytest.mark.parametrize(
    ("action", "bucket"),
    [
        ("DeleteBucket", "my-test-bucket-cross-account"),
        ("GetBucketPolicy", "threat-scenario-flow-log-bucket-23456"),
    ],
)
@pytest.mark.reference_data
def test_real_bucket_operations_have_a_bucket_and_no_object(action: str, bucket: str) -> None:
    assert s3_location(_real(action)) == S3Location(bucket)


@pytest.mark.parametrize(
    "action", ["ConsoleLogin", "GetCallerIdentity", "AssumeRole", "UploadSSHPublicKey"]
)
@pytest.mark.reference_data
def test_real_non_s3_events_have_no_location(action: str) -> None:
    assert s3_location(_real(action)) == S3Location()


# --- resources ARNs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "resources",
    [list(order) for order in itertools.permutations([_object_arn("dir/k.txt"), BUCKET_ARN])],
)
def test_arns_in_any_order(resources: list[dict[str, str]]) -> None:
    assert s3_location(_trail(resources=resources)) == S3Location("b", "dir/k.txt")


def test_two_object_arns_pick_the_request_key_whatever_the_order() -> None:
    source, destination = _object_arn("src/a.md"), _object_arn("dst/z.md")
    for resources in itertools.permutations([source, destination, BUCKET_ARN]):
        doc = _trail(
            resources=list(resources),
            request_parameters="{bucketName=b, x-amz-copy-source=b/src/a.md, key=dst/z.md}",
        )
        assert s3_location(doc).object_key == "dst/z.md"


def test_two_object_arns_without_a_key_drop_the_copy_source() -> None:
    doc = _trail(
        resources=[_object_arn("a/source.md"), _object_arn("z/dest.md"), BUCKET_ARN],
        flattened={"request_parameters": {"x-amz-copy-source": "b/a/source.md"}},
    )
    assert s3_location(doc).object_key == "z/dest.md"


def test_two_object_arns_and_no_hint_pick_the_first_key_in_sorted_order() -> None:
    doc = _trail(resources=[_object_arn("z.md"), _object_arn("a.md")])
    assert s3_location(doc) == S3Location("b", "a.md")


def test_list_objects_arn_prefix_gives_the_bucket_and_prefix_not_an_object() -> None:
    resources = [{"type": "AWS::S3::Object", "ARNPrefix": "arn:aws:s3:::b/logs/2025/"}, BUCKET_ARN]
    location = s3_location(_trail(resources=resources))
    assert location == S3Location("b", None, "logs/2025/")
    assert location.uri == "s3://b/logs/2025/*"


def test_list_objects_prefix_parameter_and_empty_arn_prefix() -> None:
    resources = [{"type": "AWS::S3::Object", "ARNPrefix": "arn:aws:s3:::b/"}, BUCKET_ARN]
    params = {"list-type": "2", "bucketName": "b", "prefix": "img/", "Host": "b.s3.amazonaws.com"}
    doc = _trail(resources=resources, request_parameters=java_map_string(params))
    assert s3_location(doc) == S3Location("b", None, "img/")
    assert s3_location(_trail(resources=resources)) == S3Location("b")


def test_support_factory_list_objects_has_only_the_bucket() -> None:
    doc = anonymous_s3_event("198.51.100.1", action="ListObjects", bucket="pub")
    assert s3_location(doc) == S3Location("pub")


def test_other_partitions_and_flattened_resource_fields() -> None:
    cn = _trail(resources=[{"arn": "arn:aws-cn:s3:::cn-bucket/k"}])
    assert s3_location(cn) == S3Location("cn-bucket", "k")
    # As the `fields` API returns them: `aws.cloudtrail.resources.arn` as one list.
    flat = {"aws.cloudtrail.resources.arn": ["arn:aws:s3:::b", "arn:aws:s3:::b/x/y"]}
    assert s3_location(flat) == S3Location("b", "x/y")


def test_non_s3_arns_are_ignored() -> None:
    doc = _trail(resources=[{"arn": "arn:aws:iam::111111111111:role/r"}, {"arn": 7}])
    assert s3_location(doc) == S3Location()


# --- the request_parameters string -------------------------------------------------------


def test_string_only() -> None:
    doc = _trail(request_parameters="{bucketName=b, Host=b.s3.us-east-1.amazonaws.com, key=k.txt}")
    assert s3_location(doc) == S3Location("b", "k.txt")


@pytest.mark.parametrize(
    "key",
    [
        "reports/Q4, final (v=2).csv",  # ", " not followed by name=, and "="
        "a=b=c",
        "{braces}.json",
        "weird}.txt",
        "stray{brace.txt",  # unbalanced: nesting is not trusted, top-level split still works
        "[x].txt",
        "ends with space ",
    ],
)
def test_string_keys_with_separators_braces_and_equals(key: str) -> None:
    text = java_map_string({"bucketName": "b", "Host": "b.s3.amazonaws.com", "key": key})
    assert s3_location(_trail(request_parameters=text)) == S3Location("b", key.strip())


def test_string_key_that_looks_like_another_entry_is_cut_there() -> None:
    # A documented limit: `key=a, b=c` reads as two entries; the ARN, read first, avoids it.
    assert parse_java_map("{bucketName=b, key=a, b=c}") == {"bucketName": "b", "key": "a", "b": "c"}
    doc = _trail(request_parameters="{bucketName=b, key=a, b=c}", resources=[_object_arn("a, b=c")])
    assert s3_location(doc).object_key == "a, b=c"


def test_parse_java_map_top_level_only() -> None:
    text = (
        "{incomingTransitiveTags={Department=Engineering}, transitiveTagKeys=[Email, CostCenter], "
        "tags=[{value=johndoe@example.com, key=Email}, {value=12345, key=CostCenter}], "
        "expiration=Oct 8, 2024, 4:15:32 PM, key=real}"
    )
    parsed = parse_java_map(text)
    assert parsed["key"] == "real"
    assert parsed["expiration"] == "Oct 8, 2024, 4:15:32 PM"
    assert parsed["incomingTransitiveTags"] == "{Department=Engineering}"
    assert parsed["transitiveTagKeys"] == "[Email, CostCenter]"


@pytest.mark.parametrize("text", [None, 3, "", "{}", "no braces", "{=x}", "{, }", ["{a=b}"]])
def test_parse_java_map_never_raises(text: Any) -> None:
    assert parse_java_map(text) == {}


def test_old_array_values() -> None:
    # eventVersion 1.03: `"host":["s3.us-west-2.amazonaws.com"]` -> `host=[...]`
    doc = _trail(request_parameters="{bucketName=[old-bucket], host=[s3.us-west-2.amazonaws.com]}")
    assert s3_location(doc) == S3Location("old-bucket")


@pytest.mark.reference_data
def test_ssh_key_value_with_spaces_and_at() -> None:
    doc = _real("UploadSSHPublicKey")
    parsed = parse_java_map(doc["aws"]["cloudtrail"]["request_parameters"])
    assert parsed["userName"] == "Alice"
    assert parsed["sSHPublicKeyBody"].endswith("Alice@localhost.domain")


# --- host names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "bucket"),
    [
        ("pub.s3.us-east-1.amazonaws.com", "pub"),
        ("flaws2.cloud.s3.amazonaws.com", "flaws2.cloud"),
        ("my-bucket.s3-us-west-2.amazonaws.com", "my-bucket"),
        ("my-bucket.s3.dualstack.eu-west-1.amazonaws.com", "my-bucket"),
        ("site.example.s3-website-us-east-1.amazonaws.com", "site.example"),
        ("cn-bucket.s3.cn-north-1.amazonaws.com.cn", "cn-bucket"),
        ("Upper.S3.amazonaws.com", "upper"),
        ("pub.s3.amazonaws.com:443", "pub"),
        ("s3.ap-southeast-1.amazonaws.com", None),  # path style: no bucket
        ("s3.amazonaws.com", None),
        ("s3-external-1.amazonaws.com", None),
        ("ap-1-123456789012.s3-accesspoint.us-east-1.amazonaws.com", None),
        ("sts.us-east-1.amazonaws.com", None),
        ("example.com", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_bucket_from_host(host: Any, bucket: str | None) -> None:
    assert bucket_from_host(host) == bucket


def test_server_name_is_the_last_resort_for_the_bucket() -> None:
    doc = {"tls": {"client": {"server_name": "vhost-bucket.s3.us-east-1.amazonaws.com"}}}
    assert s3_location(doc) == S3Location("vhost-bucket")
    path_style = {"tls": {"client": {"server_name": "s3.ap-southeast-1.amazonaws.com"}}}
    assert s3_location(path_style) == S3Location()


def test_host_parameter_comes_before_server_name() -> None:
    doc = {
        **_trail(flattened={"request_parameters": {"Host": "param.s3.amazonaws.com"}}),
        "tls": {"client": {"server_name": "tls.s3.amazonaws.com"}},
    }
    assert s3_location(doc).bucket == "param"


# --- nothing, or nonsense ----------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        {},
        None,
        "a string",
        [1, 2],
        {"aws": "not an object"},
        {"aws": {"cloudtrail": {"resources": "arn:aws:s3:::b", "flattened": [1]}}},
        {"aws": {"cloudtrail": {"request_parameters": 12, "resources": [None, 3, {"arn": None}]}}},
        {"aws": {"cloudtrail": {"flattened": {"request_parameters": {"bucketName": {"x": 1}}}}}},
        {"tls": {"client": {"server_name": ["a", "b"]}}},
    ],
)
def test_nothing_usable_gives_an_empty_location(doc: Any) -> None:
    location = s3_location(doc)
    assert location.bucket is None
    assert location.uri is None


def test_does_not_modify_the_document() -> None:
    doc = anonymous_s3_event("203.0.113.7")
    before = copy.deepcopy(doc)
    s3_location(doc)
    assert doc == before


def test_get_field_reads_nested_and_dotted_keys() -> None:
    doc = {"a": {"b.c": {"d": 1}}, "x.y": {"z": False}, "p": {"q": 0}}
    assert get_field(doc, "a.b.c.d") == 1
    assert get_field(doc, "x.y.z") is False
    assert get_field(doc, "p.q") == 0
    assert get_field(doc, "a.missing") is None
    assert get_field("not a mapping", "a") is None
