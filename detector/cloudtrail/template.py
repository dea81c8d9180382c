"""The CloudTrail index as Elastic's AWS integration maps it, for the indices the detector
creates: `detector import cloudtrail`'s and the demo's. Pure.

`index_template(index, meta)` is the one composable template of such an index: exactly that
name, the integration's mapping (`ECS_MAPPINGS`), a plain index, `meta` saying whose it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Above Elastic's built-in `logs` template (`logs-*-*`, priority 100, which makes a matching
# name a data stream) and Fleet's `logs-aws.cloudtrail` (`logs-aws.cloudtrail-*`, 200), so the
# index is a plain one even on a cluster with those (a data stream would take documents only
# through `create` with `@timestamp`, and through Fleet's pipelines). Each template names one
# index exactly, so none of ours overlaps another at this priority.
PRIORITY = 300

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


def index_template(index: str, meta: Mapping[str, str]) -> dict[str, Any]:
    """A composable template giving exactly `index` the integration's mapping as a plain index;
    `meta` is its `_meta` and the mapping's (how an index tells who created it)."""
    return {
        "index_patterns": [index],
        "priority": PRIORITY,
        "template": {
            "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
            "mappings": {"_meta": dict(meta), **ECS_MAPPINGS},
        },
        "_meta": dict(meta),
    }
