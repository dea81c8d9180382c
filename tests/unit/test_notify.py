"""Notification channels, routing, messages and delivery state: pure logic, no cluster."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from detector.deployment import kibana
from detector.errors import ConfigError
from detector.notify import channels, message, routing, state
from detector.notify.channels import Channel
from detector.notify.marks import with_marks
from detector.notify.webhook import body_bytes, headers, signature

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


def alert(
    rule_id: str = "r1", severity: str = "medium", tags: tuple[str, ...] = ("AWS",)
) -> dict[str, Any]:
    return {
        "@timestamp": "2025-01-15T12:00:05.000Z",
        "source": {"address": "203.0.113.7", "geo": {"country_name": "Iceland"}},
        "kibana": {
            "alert": {
                "uuid": "abc123",
                "reason": "s3 access by 203.0.113.7",
                "severity": severity,
                "risk_score": 47,
                "new_terms": ["203.0.113.7"],
                "rule": {
                    "rule_id": rule_id,
                    "name": "Rare source",
                    "tags": list(tags),
                    "execution": {"uuid": "exec-1"},
                },
            }
        },
        "detector": {
            "first_seen": "2025-01-15T11:58:00.000Z",
            "event_count": 3,
            "actions": ["GetObject", "ListBucket"],
            "s3": {"bucket": "public-assets", "object_key": "reports/q4.csv"},
        },
    }


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notifications.toml"
    path.write_text(text)
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as error:
        routing.load_file(path, env or {})
    return error.value.problems


# --- channels ------------------------------------------------------------------------------


def test_a_masked_url_keeps_only_its_scheme() -> None:
    assert channels.mask("slack://T000/B000/XXXX") == "slack://***"
    assert channels.mask("no scheme at all") == "***"


def test_url_channel_names_are_stable_and_reveal_nothing_of_the_url() -> None:
    url = "webhook+https://soar.example.com/hook?token=t0p"
    name = channels.url_name(url)
    assert name == channels.url_name(url) and name.startswith("webhook-")
    assert "soar" not in name and "t0p" not in name and channels.NAME.match(name)


def test_notify_urls_channels_get_the_digest_threshold_except_webhooks() -> None:
    found = channels.from_url_list(" json://a/x , webhook+http://b/y ,json://a/x", 20, "k")
    assert [(c.kind, c.digest_threshold, c.secret) for c in found] == [
        ("apprise", 20, None),
        ("webhook", None, "k"),
    ]


def test_a_channel_never_shows_its_url_in_its_repr() -> None:
    channel = Channel("oncall", "slack://T000/B000/XXXX")
    assert "XXXX" not in repr(channel) and "XXXX" not in str(channel)


# --- routing file ----------------------------------------------------------------------------


def test_a_file_without_routes_sends_every_alert_to_every_channel(tmp_path: Path) -> None:
    path = write(tmp_path, '[channel.a]\nurl = "json://h/a"\n[channel.b]\nurl_env = "B"\n')
    found, routes = routing.load_file(path, {"B": "json://h/b"})
    assert [c.name for c in found] == ["a", "b"]
    assert routing.Routing(tuple(found), tuple(routes)).targets(alert()) == ["a", "b"]


def test_routes_filter_by_rule_id_tag_and_minimum_severity(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[channel.page]\nurl = "json://h/p"\n[channel.feed]\nurl = "json://h/f"\n'
        '[[route]]\nchannels = ["page"]\nmin_severity = "high"\ntags = ["AWS"]\n'
        '[[route]]\nchannels = ["feed"]\nrule_ids = ["r1"]\n',
    )
    found, routes = routing.load_file(path, {})
    table = routing.Routing(tuple(found), tuple(routes))
    assert table.targets(alert("r1", "medium")) == ["feed"]
    assert table.targets(alert("r1", "critical")) == ["page", "feed"]
    assert table.targets(alert("r2", "high", tags=("GCP",))) == []


def test_an_unknown_channel_in_a_route_is_named_with_file_and_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[channel.a]\nurl = "json://h/a"\n[[route]]\nchannels = ["a", "pager"]\n'
    )
    assert problems(path) == [f"{path}: route[1]: unknown channel 'pager' (defined: a)"]


def test_a_missing_secret_is_named_without_its_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[channel.soar]\nurl = "webhook+https://h/x"\nsecret_env = "SOAR_KEY"\n'
        '[channel.oncall]\nurl_env = "ONCALL_URL"\n',
    )
    assert problems(path) == [
        f"{path}: channel.soar: missing secret: the environment variable SOAR_KEY (secret_env) "
        "is not set",
        f"{path}: channel.oncall: missing secret: the environment variable ONCALL_URL (url_env) "
        "is not set",
    ]


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'colour = 1\n[channel."Bad.Name"]\nurl = "json://h"\n[channel.b]\ndigest_threshold = 0\n'
        '[[route]]\nchannels = []\nmin_severity = "urgent"\n',
    )
    found = problems(path)
    assert len(found) == 6
    assert all(line.startswith(f"{path}: ") for line in found)
    assert any("colour: unknown key" in line for line in found)
    assert any("channel.Bad.Name: a channel name" in line for line in found)
    assert any("channel.b: missing url" in line for line in found)
    assert any("digest_threshold must be a positive integer" in line for line in found)
    assert any("min_severity must be one of" in line for line in found)


def test_a_channel_no_route_names_is_a_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[channel.a]\nurl = "json://h/a"\n[channel.b]\nurl = "json://h/b"\n'
        '[[route]]\nchannels = ["a"]\n',
    )
    assert problems(path) == [f"{path}: channel.b: no route names it: it would receive nothing"]


def test_a_webhook_takes_no_digest_threshold(tmp_path: Path) -> None:
    path = write(tmp_path, '[channel.s]\nurl = "webhook+https://h/x"\ndigest_threshold = 5\n')
    assert "a webhook gets each alert" in problems(path)[0]


def test_invalid_toml_is_one_problem_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[channel.a\n")
    assert problems(path)[0].startswith(f"{path}: not valid TOML")


def test_bad_urls_are_named_by_their_entry_and_masked(tmp_path: Path) -> None:
    listed = channels.from_url_list("nosuch://tok3n@h, webhook+http://:80/x", None, None)
    lines = routing.unusable_urls(listed, lambda url: not url.startswith("nosuch"))
    assert lines == [
        f"DETECTOR_NOTIFY_URLS: URL 1 ({listed[0].name}): bad URL: nosuch://*** is not a URL "
        "apprise understands (see its list of services)",
        f"DETECTOR_NOTIFY_URLS: URL 2 ({listed[1].name}): bad URL: webhook+http://*** has no host",
    ]
    assert not any("tok3n" in line for line in lines)


# --- messages ----------------------------------------------------------------------------


def test_an_alert_message_has_every_field_the_on_call_needs() -> None:
    text = message.alert_message(alert(), None)
    assert text.title == "[medium] Rare source: 203.0.113.7 (Iceland)"
    for part in (
        "s3 access by 203.0.113.7",
        "Rule: Rare source (r1)",
        "Severity: medium (risk score 47)",
        "Bucket/object: public-assets/reports/q4.csv",
        "Actions: GetObject, ListBucket",
        "Events: 3",
        "First seen: 2025-01-15T11:58:00.000Z",
    ):
        assert part in text.body
    assert "Kibana" not in text.body


def test_the_discover_link_opens_the_alert_in_the_alerts_data_view() -> None:
    body = message.alert_message(alert(), "https://kibana.example.com/").body
    link = body.rsplit("Open in Kibana: ", 1)[1]
    assert link.startswith("https://kibana.example.com/app/discover#/?_g=(time:(from:")
    assert "query:(language:kuery,query:'kibana.alert.uuid:%22abc123%22')" in link
    assert f"dataViewId:'{kibana.ALERTS_DATA_VIEW}'" in link
    assert message.ALERTS_DATA_VIEW == kibana.ALERTS_DATA_VIEW


def test_a_digest_lists_alerts_up_to_its_limit_and_counts_the_rest() -> None:
    docs = [alert() for _ in range(message.DIGEST_LINES + 5)]
    text = message.digest_message(docs, None)
    assert text.title == f"{len(docs)} new alerts: Rare source"
    assert text.body.count("\n- [medium]") == message.DIGEST_LINES
    assert text.body.endswith("... and 5 more")


# --- delivery state --------------------------------------------------------------------------


def test_created_alerts_carry_a_pending_mark_per_wanted_channel_and_the_input_is_untouched() -> (
    None
):
    original = alert()
    marked = with_marks(original, ["a", "b"], NOW)
    assert marked["detector"]["notifications"]["a"] == {
        "status": "pending",
        "attempts": 0,
        "updated_at": "2025-01-15T12:00:00.000Z",
    }
    assert "notifications" not in original["detector"]
    assert with_marks(original, [], NOW) == original


def test_the_pending_search_asks_for_unsent_alerts_of_the_channels_oldest_first() -> None:
    body = state.pending_query(["a"], NOW, ["r1"], 10, after=["x"])
    should = body["query"]["bool"]["should"]
    assert should == [{"terms": {"detector.notifications.a.status": ["pending", "failed"]}}]
    assert body["sort"][0] == {"@timestamp": "asc"} and body["search_after"] == ["x"]
    assert {"terms": {"kibana.alert.rule.rule_id": ["r1"]}} in body["query"]["bool"]["filter"]


def test_failing_channels_count_every_undelivered_alert_by_status_with_the_latest_error() -> None:
    latest = {"detector": {"notifications": {"a": {"last_error": "refused", "updated_at": "T"}}}}
    statuses = {"buckets": [{"key": "pending", "doc_count": 24}, {"key": "failed", "doc_count": 1}]}
    pending_only = {"buckets": [{"key": "pending", "doc_count": 3}]}
    response = {
        "aggregations": {
            "a": {
                "doc_count": 25,
                "statuses": statuses,
                "failed": {"doc_count": 1, "latest": {"hits": {"hits": [{"_source": latest}]}}},
            },
            "b": {"doc_count": 0, "statuses": {"buckets": []}, "failed": {"doc_count": 0}},
            "c": {"doc_count": 3, "statuses": pending_only, "failed": {"doc_count": 0}},
        }
    }
    [found] = state.failing_channels(response, ["a", "b", "c"])
    assert str(found) == (
        "notification channel a: 25 alert(s) not delivered (24 pending, 1 failed); "
        "last attempt at T failed: refused"
    )


def test_a_failed_mark_keeps_a_bounded_error() -> None:
    update = state.failed_update("a", 2, "x" * 5000, NOW)["detector"]["notifications"]["a"]
    assert update["status"] == "failed" and update["attempts"] == 2
    assert len(update["last_error"]) < 400


# --- webhook -----------------------------------------------------------------------------


def test_the_webhook_signs_the_exact_body_and_keys_it_by_the_alert_id() -> None:
    body = body_bytes(alert())
    sent = headers(Channel("s", "webhook+https://h/x", secret="k"), "abc123", body)
    assert sent["Idempotency-Key"] == "abc123"
    expected = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sent["X-Detector-Signature"] == expected == signature("k", body)


def test_an_unsigned_webhook_sends_no_signature_header() -> None:
    sent = headers(Channel("s", "webhook+https://h/x"), "abc123", b"{}")
    assert "X-Detector-Signature" not in sent


def test_a_broken_channel_is_not_also_unknown_to_its_routes(tmp_path: Path) -> None:
    path = write(tmp_path, '[channel.a]\nurl_env = "A"\n[[route]]\nchannels = ["a"]\n')
    assert problems(path) == [
        f"{path}: channel.a: missing secret: the environment variable A (url_env) is not set"
    ]


def test_deliveries_are_counted_by_channel_and_status() -> None:
    from prometheus_client import generate_latest

    from detector.metrics import Metrics

    metrics = Metrics()
    metrics.notified("oncall", "sent", 3)
    metrics.notified("oncall", "failed")
    text = generate_latest(metrics.registry).decode()
    assert 'detector_notifications_total{channel="oncall",status="sent"} 3.0' in text
    assert 'detector_notifications_total{channel="oncall",status="failed"} 1.0' in text
