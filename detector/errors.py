"""The detector's exceptions: one root, a small tree, context on every error.

    DetectorError                  root; `str()` is a one-line, user-facing message
    ├── ConfigError                invalid settings (CLI exit code 2); one problem per line
    ├── RuleError                  a rule file or rule is wrong; carries path, rule_id, key, line
    │   ├── UnsupportedRuleError   a valid rule the engine does not run (type, language)
    │   ├── RuleProblems           several problems of one rule file; carries each RuleError
    │   └── FixtureError           a rule's test fixture (`X.tests.toml`) is wrong; adds the case
    ├── QueryError                 a KQL query cannot be parsed; carries query and position
    ├── DateMathError              an Elasticsearch date-math value cannot be parsed
    ├── ElasticsearchError         talking to Elasticsearch failed (raised by `detector.es` only)
    │   ├── UnavailableError       unreachable, timed out or overloaded; transient, retried
    │   │   └── TlsError           TLS handshake or certificate verification failed
    │   ├── AuthenticationError    401: wrong credentials
    │   ├── AuthorizationError     403: the credentials lack a privilege
    │   ├── RequestError           any other rejected request (4xx/5xx); carries status and reason
    │   │   └── ConflictError      409: a conditional write lost (`if_seq_no`, `op_type: create`)
    │   ├── BulkError              some items of a bulk write were rejected; carries the items
    │   └── PartialResultError     a search answered without a cluster or some shards (a remote
    │                              skipped, shards failed or missing); transient; names them
    ├── KibanaError                Kibana is unreachable, refused a request or reported errors
    │   └── KibanaAuthError        Kibana rejected the credentials (waiting will not help)
    ├── SetupError                 a `detector setup` step failed (role, API key)
    ├── ServiceError               `detector run` cannot start (e.g. its metrics port is taken)
    ├── NotifyError                a notification could not be delivered; carries the channel
    ├── DemoError                  the demo cannot run (its index holds data it did not write)
    ├── RecordError                a raw CloudTrail record cannot be mapped (no eventID/eventTime)
    ├── ImportRefusedError         `detector import` will not write to that target (data stream)
    └── RuleTestIndexError         `rules test` will not write an index it did not create

Messages are cut to `MAX_MESSAGE` characters with a marker (`shorten`). Only the `detector.es`
package imports the Elasticsearch client (`es.responses` translates its exceptions into this
tree), so no other module ever catches a client exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Longest message an error keeps: a rejected document can put a 40 KB value into Elasticsearch's
# reason, and the message goes into log lines, the execution log and `detector health`.
MAX_MESSAGE = 4000


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text`, cut to about `limit` characters with a marker saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


class DetectorError(Exception):
    """Root of every error the detector raises on purpose; its message is never huge."""

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(shorten(str(message)), *args)


class ConfigError(DetectorError):
    """Invalid settings; `problems` holds one line per bad variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Location:
    """Where in a rule a problem is: file, rule id, key path and line, each optional."""

    path: Path | None = None
    rule_id: str | None = None
    key: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.path is not None:
            parts.append(f"{self.path}:{self.line}" if self.line else str(self.path))
        if self.rule_id:
            parts.append(f"rule {self.rule_id}")
        if self.key:
            parts.append(f"key {self.key!r}")
        return ", ".join(parts)


class RuleError(DetectorError):
    """A rule file or rule is invalid."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location or Location()
        super().__init__(f"{self.location}: {message}" if str(self.location) else message)


class UnsupportedRuleError(RuleError):
    """A well-formed rule that this engine does not run (for example `type = "eql"`); `what`
    names it in a few words (`type eql`, `language lucene`)."""

    def __init__(self, message: str, location: Location | None = None, what: str = "") -> None:
        self.what = what
        super().__init__(message, location)


class RuleProblems(RuleError):
    """Several problems of one rule file; `errors` holds each, `str()` one line per problem."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = errors
        self.message = "\n".join(error.message for error in errors)
        self.location = errors[0].location
        DetectorError.__init__(self, "\n".join(str(error) for error in errors))


class FixtureError(RuleError):
    """A rule's test fixture (`X.tests.toml`, `detector rules test`) that does not load, or does
    not fit its rule; `case` names the case (None: the file as a whole)."""

    def __init__(
        self, message: str, location: Location | None = None, case: str | None = None
    ) -> None:
        self.case = case
        where = Location() if location is None else location
        super().__init__(f"case {case!r}: {message}" if case else message, where)


class QueryError(DetectorError):
    """A KQL query that cannot be parsed; the message shows a caret under the position."""

    def __init__(self, message: str, query: str, position: int) -> None:
        self.message = message
        self.query = query
        self.position = position
        super().__init__(f"{message} at position {position}\n{self.caret()}")

    def caret(self) -> str:
        """The offending line of the query with a caret under the position."""
        start = self.query.rfind("\n", 0, self.position) + 1
        end = self.query.find("\n", self.position)
        line = self.query[start : end if end != -1 else len(self.query)]
        return f"{line}\n{' ' * (self.position - start)}^"


class DateMathError(DetectorError):
    """An Elasticsearch date-math expression (`now-7d/d`) that cannot be parsed."""


class ElasticsearchError(DetectorError):
    """Talking to Elasticsearch failed; raised only by `detector.es.client`."""


class UnavailableError(ElasticsearchError):
    """Elasticsearch could not be reached or answered 429/502/503/504 or timed out (transient)."""


class TlsError(UnavailableError):
    """The TLS handshake or certificate verification failed."""


class AuthenticationError(ElasticsearchError):
    """Elasticsearch rejected the credentials (401)."""


class AuthorizationError(ElasticsearchError):
    """The credentials lack a privilege for this request (403)."""


class RequestError(ElasticsearchError):
    """Elasticsearch rejected a request for another reason."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None) -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


class ConflictError(RequestError):
    """A conditional write was refused (409): the document changed, or already exists."""


class BulkError(ElasticsearchError):
    """Some items of a bulk write were rejected; `items` holds each rejected item's result."""

    def __init__(
        self,
        message: str,
        items: list[dict[str, Any]],
        created: list[str] | None = None,
        existing: list[str] | None = None,
    ) -> None:
        self.items = items
        # What the same bulk write did with the other documents.
        self.created = created or []
        self.existing = existing or []
        super().__init__(message)


class PartialResultError(ElasticsearchError):
    """A search answered without part of its data: a remote cluster skipped or failed
    (`_clusters`), shards failed on a lost node, or a cluster that holds the rule's indices
    searched no shard. Any answer built on it would be wrong (a term whose history sat there
    alerts as new), so the execution fails; transient: the window is tried again.

    `clusters`: the cluster aliases concerned (`(local)` for the cluster asked)."""

    def __init__(self, message: str, clusters: tuple[str, ...] = ()) -> None:
        self.clusters = clusters
        super().__init__(message)


class KibanaError(DetectorError):
    """Kibana is unreachable, refused the request or reported errors."""


class KibanaAuthError(KibanaError):
    """Kibana rejected the credentials: waiting longer will not help."""


class SetupError(DetectorError):
    """A `detector setup` step failed."""


class ServiceError(DetectorError):
    """`detector run` cannot start its service (e.g. the metrics port is taken)."""


class NotifyError(DetectorError):
    """A notification channel did not take a message; the URL never appears (it is a secret).

    `transient`: worth retrying soon (connection refused, timeout, 429, 5xx).
    """

    def __init__(self, channel: str, message: str, *, transient: bool = True) -> None:
        self.channel = channel
        self.transient = transient
        super().__init__(f"channel {channel}: {message}")


class DemoError(DetectorError):
    """The demo cannot run (e.g. the index name belongs to real data)."""


class RecordError(DetectorError):
    """A raw CloudTrail record that cannot become a document (not an object, no eventID...)."""


class ImportRefusedError(DetectorError):
    """`detector import` refuses the target index (a data stream or alias it did not create)."""


class RuleTestIndexError(DetectorError):
    """A throw-away index name of `detector rules test` exists already: the test writes only
    indices it creates, so the case does not run."""
