"""`detector notify check`, and the start-up validation of `once`, `run` and `check`: a bad URL, an
unknown channel in a route and a missing secret exit 2 naming the entry, before anything runs
(no Elasticsearch is needed to say so), and never print a URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.cli import main

# Nothing listens there: a command that got past validation would fail to connect (exit 1).
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETECTOR_ES_URL", NOWHERE)
    monkeypatch.setenv("DETECTOR_ES_READY_TIMEOUT", "0")


@pytest.mark.parametrize("command", [["notify", "check"], ["once"], ["run"], ["check"]])
def test_a_url_apprise_does_not_understand_exits_2_naming_it_masked(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DETECTOR_NOTIFY_URLS", "json://127.0.0.1/ok,nosuchservice://s3cr3t@x")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "DETECTOR_NOTIFY_URLS: URL 2 (nosuchservice-" in err
    assert "bad URL: nosuchservice://*** is not a URL apprise understands" in err
    assert "s3cr3t" not in err


@pytest.mark.parametrize("command", [["notify", "check"], ["once"], ["run"], ["check"]])
def test_an_unknown_channel_in_a_route_exits_2_naming_the_route(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[channel.a]\nurl = "json://h/a"\n[[route]]\nchannels = ["a", "pagr"]\n')
    monkeypatch.setenv("DETECTOR_NOTIFICATIONS_FILE", str(path))
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"configuration error: {path}: route[1]: unknown channel 'pagr' (defined: a)" in err


def test_a_missing_secret_exits_2_naming_the_channel_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[channel.soar]\nurl = "webhook+https://h/x"\nsecret_env = "SOAR_KEY"\n')
    monkeypatch.setenv("DETECTOR_NOTIFICATIONS_FILE", str(path))
    monkeypatch.delenv("SOAR_KEY", raising=False)
    assert main(["once"]) == 2
    assert (
        f"{path}: channel.soar: missing secret: the environment variable SOAR_KEY"
        in capsys.readouterr().err
    )


def test_check_lists_the_channels_masked_and_their_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "n.toml"
    path.write_text(
        '[channel.oncall]\nurl_env = "ONCALL"\ndigest_threshold = 10\n'
        '[[route]]\nchannels = ["oncall"]\nmin_severity = "high"\n'
    )
    monkeypatch.setenv("DETECTOR_NOTIFICATIONS_FILE", str(path))
    monkeypatch.setenv("ONCALL", "slack://T000/B000/XXXXSECRET")
    assert main(["notify", "check"]) == 0
    out = capsys.readouterr().out
    assert "channel oncall: slack://*** (apprise, digest above 10)" in out
    assert "route 1: severity >= high -> oncall" in out
    assert "XXXXSECRET" not in out


def test_test_of_an_unknown_channel_exits_2_listing_the_known_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DETECTOR_NOTIFY_URLS", "json://127.0.0.1:9/x")
    assert main(["notify", "test", "nope"]) == 2
    assert "error: no channel 'nope' (channels: json-" in capsys.readouterr().err


def test_test_of_a_channel_that_refuses_exits_1_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "webhook+http://127.0.0.1:9/x"
    monkeypatch.setenv("DETECTOR_NOTIFY_URLS", url)
    monkeypatch.setenv("DETECTOR_NOTIFY_RETRY_ATTEMPTS", "1")
    from detector.notify.channels import url_name

    assert main(["notify", "test", url_name(url)]) == 1
    err = capsys.readouterr().err
    assert f"error: channel {url_name(url)}: cannot reach the webhook" in err
    assert "127.0.0.1:9" not in err


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_plain_web_address_is_refused_with_the_webhook_url_to_write(
    scheme: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DETECTOR_NOTIFY_URLS", f"{scheme}://hooks.example/t0ken")
    assert main(["notify", "check"]) == 2
    err = capsys.readouterr().err
    assert f"bad URL: {scheme}://*** is not a URL apprise understands" in err
    assert f"write it webhook+{scheme}://... (the same URL after 'webhook+')" in err
    assert "t0ken" not in err


def test_another_unknown_scheme_gets_no_webhook_suggestion(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DETECTOR_NOTIFY_URLS", "nosuchscheme://foo")
    assert main(["notify", "check"]) == 2
    assert "webhook+" not in capsys.readouterr().err
