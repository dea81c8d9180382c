"""`detector check` and the Elasticsearch access layer against the real test node.

The test node (integ-test-zip) cannot create the `.security` index, so no API key can be created
there: the API-key test shows that a key is sent and checked by Elasticsearch (an unknown key is
refused with 401); `tests/unit/test_es_retry.py` shows the header it is sent in.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from detector.errors import AuthorizationError
from detector.es.client import Elastic
from tests.support.commands import Run, detector_command, node_variables

# Start-up of a Python process that imports the client, on a slow CI machine.
PROCESS_SLACK = 5.0
# The readiness loop may start one last attempt just before the budget ends and wait up to 3 s
# (2 s backoff plus 1 s of jitter) before it.
READY_SLACK = 3.0 + PROCESS_SLACK


def detector_check(tmp_path, **variables: str) -> Run:
    """`python -m detector check` with exactly these DETECTOR_* variables, timed."""
    return detector_command(tmp_path, ["check"], **variables)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def assert_clean_failure(run: Run, message: str) -> None:
    assert run.returncode == 1, run.stderr
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_check_prints_the_cluster_version(es_node, tmp_path):
    run = detector_check(tmp_path, **node_variables(es_node))

    assert run.returncode == 0, run.stderr
    assert f"version: {es_node.version}" in run.stdout


def test_a_wrong_password_fails_at_once_with_an_authentication_message(es_node, tmp_path):
    run = detector_check(tmp_path, **node_variables(es_node, DETECTOR_ES_PASSWORD="wrong-pw"))

    assert_clean_failure(run, "error: authentication failed (401)")
    assert "wrong-pw" not in run.stderr
    assert run.seconds < PROCESS_SLACK


def test_a_closed_port_fails_with_an_unreachable_message(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    run = detector_check(tmp_path, DETECTOR_ES_URL=url, DETECTOR_ES_READY_TIMEOUT="1")

    assert_clean_failure(run, "error: cannot reach Elasticsearch")
    assert run.seconds < 1 + READY_SLACK


def test_tls_to_the_plain_http_port_fails_with_a_tls_message(es_node, tmp_path):
    https = es_node.url.replace("http://", "https://", 1)
    variables = node_variables(es_node, DETECTOR_ES_URL=https, DETECTOR_ES_READY_TIMEOUT="1")
    run = detector_check(tmp_path, **variables)

    assert_clean_failure(run, "error: TLS failure talking to Elasticsearch")
    assert run.seconds < 1 + READY_SLACK


def test_a_port_that_never_opens_fails_after_the_ready_budget_and_no_later(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    run = detector_check(tmp_path, DETECTOR_ES_URL=url, DETECTOR_ES_READY_TIMEOUT="4")

    assert_clean_failure(run, "cannot reach Elasticsearch")
    assert 4 <= run.seconds < 4 + READY_SLACK


class DelayedProxy:
    """Forwards a TCP port to the node, but only starts listening `delay` seconds after start()."""

    def __init__(self, upstream: str, delay: float) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 9200)
        self.delay = delay
        self.port = closed_port()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        threading.Thread(target=self._serve, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()

    def _serve(self) -> None:
        if self._stop.wait(self.delay):
            return
        self._listener = socket.create_server(("127.0.0.1", self.port))
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def delayed_proxy(es_node) -> Iterator[DelayedProxy]:
    proxy = DelayedProxy(es_node.url, delay=3.0)
    yield proxy
    proxy.stop()


def test_check_waits_for_a_node_that_starts_listening_late_saying_so_once(
    es_node, delayed_proxy, tmp_path
):
    variables = node_variables(
        es_node,
        DETECTOR_ES_URL=f"http://127.0.0.1:{delayed_proxy.port}",
        DETECTOR_ES_READY_TIMEOUT="30",
    )
    delayed_proxy.start()
    run = detector_check(tmp_path, **variables)

    assert run.returncode == 0, run.stderr
    assert f"version: {es_node.version}" in run.stdout
    assert run.seconds >= delayed_proxy.delay - 0.5
    # One line says what it waits for and how long; the retries stay out of sight (DEBUG).
    waiting = [line for line in run.stderr.splitlines() if "waiting" in line]
    assert len(waiting) == 1, run.stderr
    assert "waiting up to 30 s for it to answer and be at least yellow" in waiting[0]


def test_an_api_key_is_checked_by_elasticsearch(es_node, tmp_path):
    unknown_key = base64.b64encode(b"no-such-id:no-such-secret").decode()
    variables = {"DETECTOR_ES_URL": es_node.url, "DETECTOR_ES_API_KEY": unknown_key}
    run = detector_check(tmp_path, **variables)

    assert_clean_failure(run, "error: authentication failed (401)")
    assert unknown_key not in run.stderr


@pytest.fixture
def reader(es_node, es_settings) -> Iterator[Elastic]:
    """`Elastic` as the user that may only read `logs-*`."""
    if not (es_node.reader_username and es_node.reader_password):
        pytest.fail("the test node has no least-privilege user (set DETECTOR_TEST_ES_READER_*)")
    settings = es_settings.model_copy(
        update={
            "es_username": es_node.reader_username,
            "es_password": SecretStr(es_node.reader_password),
        }
    )
    elastic = Elastic(settings)
    yield elastic
    elastic.close()


def test_a_read_only_user_can_search_logs(reader, token):
    response = reader.search([f"logs-{token}"], {"query": {"match_all": {}}})

    assert response["hits"]["hits"] == []


def test_a_read_only_user_writing_an_index_gets_an_authorization_error(reader, token):
    index = f"detector-alerts-{token}"

    with pytest.raises(
        AuthorizationError, match=r"not authorized \(403\).*indices:data/write/index"
    ):
        reader.call(lambda es: es.index(index=index, document={"a": 1}))


def test_check_fails_when_the_user_cannot_read_a_rule_index_pattern(es_node, tmp_path):
    # Searches silently drop indices a user may not read: `check` is where this must show.
    from tests.integration.test_engine_runs import rule_file

    rules = rule_file(tmp_path, ["logs-aws.cloudtrail*", "secret-logs-*"])
    variables = node_variables(
        es_node,
        DETECTOR_ES_USERNAME=es_node.detector_username,
        DETECTOR_ES_PASSWORD=es_node.detector_password,
        DETECTOR_BUILTIN_RULES="false",
        DETECTOR_RULES_PATH=str(rules),
    )
    run = detector_check(tmp_path, **variables)

    assert run.returncode == 1
    assert "error: no read privilege on secret-logs-*" in run.stdout
    assert "logs-aws.cloudtrail*: " in run.stdout
    assert "no read privilege on logs-aws.cloudtrail*" not in run.stdout
    assert "Traceback" not in run.stderr


def test_a_user_sees_which_patterns_it_cannot_read(reader):
    assert reader.unreadable(["logs-x-*", "filebeat-*"]) == ["filebeat-*"]


def test_check_with_a_user_that_reads_every_rule_index_passes(es_node, tmp_path):
    run = detector_check(tmp_path, **node_variables(es_node))

    assert run.returncode == 0, run.stdout
    assert "no read privilege" not in run.stdout


def test_check_says_no_index_yet_for_a_concrete_index_that_does_not_exist(es_node, tmp_path):
    from tests.integration.test_engine_runs import rule_file

    index = f"logs-aws.cloudtrail-not-created-{tmp_path.name.lower()}"
    rules = rule_file(tmp_path, [index])
    variables = node_variables(
        es_node, DETECTOR_BUILTIN_RULES="false", DETECTOR_RULES_PATH=str(rules)
    )
    run = detector_check(tmp_path, **variables)

    assert run.returncode == 0, run.stdout + run.stderr
    assert f"  {index}: no index yet" in run.stdout
    assert "Traceback" not in run.stderr


def test_once_warns_about_rule_patterns_it_may_not_read(es_node, tmp_path):
    from tests.integration.test_engine_runs import rule_file

    rules = rule_file(tmp_path, ["logs-aws.cloudtrail*", "secret-logs-*"])
    variables = node_variables(
        es_node,
        DETECTOR_ES_USERNAME=es_node.detector_username,
        DETECTOR_ES_PASSWORD=es_node.detector_password,
        DETECTOR_BUILTIN_RULES="false",
        DETECTOR_RULES_PATH=str(rules),
    )
    done = detector_command(tmp_path, ["once", "--dry-run"], **variables)

    assert "no read privilege on secret-logs-*: searches leave its indices out" in done.stderr
    assert "no read privilege on logs-aws.cloudtrail*" not in done.stderr
    assert "Traceback" not in done.stderr


def test_check_names_a_nested_query_on_a_field_an_index_does_not_nest(es_node, tmp_path, token):
    from tests.unit.test_rules import MINIMAL, write

    flat, nested = f"logs-flat-{token}", f"logs-nested-{token}"
    with es_node.client() as es:
        name = {"name": {"type": "keyword"}}
        for index, kind in ((flat, "object"), (nested, "nested")):
            mapping = {"items": {"type": kind, "properties": name}}
            es.indices.create(index=index, mappings={"properties": mapping})
    text = MINIMAL.replace('["logs-test-*"]', f'["{flat}", "{nested}"]').replace(
        'event.action: "GetObject"\n    and source.address: *', 'items: { name: "x" }'
    )
    write(tmp_path, text)
    variables = node_variables(
        es_node, DETECTOR_BUILTIN_RULES="false", DETECTOR_RULES_PATH=str(tmp_path / "rule.toml")
    )
    run = detector_check(tmp_path, **variables)

    assert run.returncode == 1, run.stdout + run.stderr
    assert f"its query searches items as nested, but {flat} map it as object" in run.stdout
    assert nested not in run.stdout.split("nested, but", 1)[1]


# --- `check` is as strict as `run`, and says at once what it waits for (the real node) -----


BAD_EXCEPTIONS = '[[exception]]\nrule_id = "*"\nfeild = "x"\n'


@pytest.mark.parametrize("command", ["check", "once"])
def test_a_bad_exceptions_file_is_refused_by_check_as_by_once_with_the_node_up(
    es_node, tmp_path, command
):
    exceptions = tmp_path / "exceptions.toml"
    exceptions.write_text(BAD_EXCEPTIONS)
    variables = node_variables(es_node, DETECTOR_EXCEPTIONS_FILE=str(exceptions))
    run = detector_command(tmp_path, [command], **variables)

    assert run.returncode == 2, run.stderr
    assert f"configuration error: {exceptions}: exception #1" in run.stderr
    assert "feild" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("command", ["check", "once"])
def test_a_notification_url_of_no_known_scheme_is_refused_by_check_as_by_once(
    es_node, tmp_path, command
):
    variables = node_variables(es_node, DETECTOR_NOTIFY_URLS="nosuchscheme://foo")
    run = detector_command(tmp_path, [command], **variables)

    assert run.returncode == 2, run.stderr
    assert "configuration error: DETECTOR_NOTIFY_URLS: URL 1" in run.stderr
    assert "Traceback" not in run.stderr


def test_https_to_the_plain_http_node_fails_at_once_naming_the_cause(es_node, tmp_path):
    if not es_node.url.startswith("http://"):
        pytest.skip("the test node serves HTTPS")
    url = es_node.url.replace("http://", "https://", 1)
    variables = node_variables(es_node, DETECTOR_ES_URL=url, DETECTOR_ES_READY_TIMEOUT="60s")
    run = detector_check(tmp_path, **variables)

    assert_clean_failure(run, "the node answers plain HTTP: use an http:// URL")
    assert run.seconds < PROCESS_SLACK + 5  # not the 60 s it would wait for a node to come up
