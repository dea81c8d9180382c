"""`detector setup`: what a deployment needs before `detector run`.

1. the index templates and indices: alerts (`detector.alerts.store`) and execution log
   (`detector.execution_log.store`);
2. with `--create-role`, the role `newterms-detector` (least privilege, see `role_descriptor`;
   its privileges are `detector/mappings/detector-role.json`, which `scripts/local-es` also
   installs as a file-realm role for the tests);
3. with `--api-key`, an API key limited to that role's privileges, printed as
   `DETECTOR_ES_API_KEY=<encoded>` or written to `--env-file` (kept when it still works);
4. with a Kibana URL, the saved objects (data views, saved search, dashboard).

Roles and API keys live in the `.security` index; a cluster that cannot create it (the
integ-test-zip lacks `analysis-common`) makes steps 2 and 3 fail with a clear message.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from detector.alerts.store import AlertStore
from detector.errors import AuthenticationError, RequestError, SetupError
from detector.es.client import Elastic
from detector.es.templates import load_resource
from detector.execution_log.store import ExecutionStore
from detector.rules import rules_for
from detector.settings import Settings

ROLE_NAME = "newterms-detector"
KEY_NAME = "newterms-detector"
ENV_KEY = "DETECTOR_ES_API_KEY"
# The role for the default settings: cluster privileges, then the index privileges on the rules'
# indices (first entry) and on the detector's own indices (second entry). `role_for` only changes
# the two entries' `names`; `scripts/local-es` reads the file as it is.
ROLE_RESOURCE = "mappings/detector-role.json"


def own_indices(settings: Settings) -> list[str]:
    """The detector's own indices and their `-*` siblings (reindex targets, rollovers)."""
    names = [settings.alerts_index, settings.execution_log_index]
    return [pattern for name in names for pattern in (name, f"{name}-*")]


def role_for(rule_indices: Sequence[str], own: Sequence[str]) -> dict[str, Any]:
    """The role `ROLE_RESOURCE` on these index patterns: read `rule_indices`; create, write and
    refresh only `own` (no `manage`: the key cannot delete or reconfigure even its own indices);
    monitor the cluster and put index templates."""
    role = load_resource(ROLE_RESOURCE)
    read, owned = role["indices"]
    read["names"], owned["names"] = list(rule_indices), list(own)
    return role


def role_descriptor(settings: Settings) -> dict[str, Any]:
    """The detector's role for `settings`: its enabled rules' indices and its own indices."""
    loaded = rules_for(settings)
    sources = sorted({pattern for rule in loaded.rules if rule.enabled for pattern in rule.index})
    return role_for(sources or ["logs-*"], own_indices(settings))


def install_templates(elastic: Elastic, settings: Settings) -> list[str]:
    """Put the index templates and create the indices; returns their names."""
    AlertStore(elastic, settings.alerts_index).ensure_index()
    ExecutionStore(elastic, settings.execution_log_index).ensure_index()
    return [settings.alerts_index, settings.execution_log_index]


@contextmanager
def _security_step(what: str) -> Iterator[None]:
    """Turn a rejected security request into a `SetupError` that says what failed and why."""
    try:
        yield
    except RequestError as exc:
        raise SetupError(f"cannot {what}: {_security_problem(exc)}") from None


def _security_problem(exc: RequestError) -> str:
    """What a rejected security request means, in the user's terms."""
    text = str(exc)
    if "Security must be explicitly enabled" in text:
        # Elasticsearch answers every security API with this when xpack.security.enabled is
        # false: there is nothing to create a role or key in.
        return (
            "security is off on this cluster (xpack.security.enabled: false), so it has no "
            "roles or API keys; run `detector setup` without --create-role and --api-key"
        )
    if "pattern_capture" in text or "security index" in text.lower():
        return (
            f"{text} (this cluster cannot store native roles or API keys: its .security index "
            "cannot be created, e.g. the integ-test-zip distribution)"
        )
    return text


def create_role(elastic: Elastic, descriptor: dict[str, Any]) -> None:
    """Create or update the detector's role."""
    with _security_step(f"create the role {ROLE_NAME}"):
        elastic.put_role(ROLE_NAME, descriptor)


def create_api_key(elastic: Elastic, descriptor: dict[str, Any]) -> str:
    """A new API key limited to `descriptor`; returns its `encoded` form."""
    with _security_step("create an API key"):
        return elastic.create_api_key(
            KEY_NAME, {ROLE_NAME: descriptor}, {"managed_by": "newterms-detector"}
        )


def key_in_file(path: Path) -> str | None:
    """The `DETECTOR_ES_API_KEY` value of an env file, if any."""
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("=")
        if name.strip() == ENV_KEY and value.strip():
            return value.strip()
    return None


def key_works(settings: Settings, key: str) -> bool:
    """Whether Elasticsearch accepts `key`."""
    update = {"es_api_key": SecretStr(key), "es_retry_attempts": 1}
    with Elastic(settings.model_copy(update=update)) as probe:
        try:
            probe.authenticate()
        except AuthenticationError:
            return False
    return True


def write_env_file(path: Path, key: str) -> None:
    """Write `DETECTOR_ES_API_KEY=<key>` (and nothing else) readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(f"{ENV_KEY}={key}\n", encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)
