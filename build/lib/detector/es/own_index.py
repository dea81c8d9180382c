"""An index the detector owns (alerts, execution log): its composable template and creation.

Every request goes through `detector.es.client.Elastic`. The template `<index>-template` covers
exactly
the index and `<index>-*` (a reindex target, a rollover), with the settings and mappings of a
packaged JSON file (`detector.es.templates`). An index that exists already (created by an
earlier version) gets the fields added since: its mapping is strict (the execution log) or
typed (the alerts), so without them it would refuse or mistype this version's documents.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from detector.errors import AuthorizationError, RequestError
from detector.es.client import Elastic
from detector.es.templates import index_template, template_name

log = logging.getLogger(__name__)


class OwnIndex:
    """One of the detector's own indices; subclasses name their packaged template file."""

    TEMPLATE_RESOURCE: ClassVar[str]

    def __init__(self, elastic: Elastic, index: str) -> None:
        self.elastic = elastic
        self.index = index

    @classmethod
    def template_body(cls, index: str) -> dict[str, Any]:
        """The composable template for exactly `index` and `<index>-*`."""
        return index_template(index, cls.TEMPLATE_RESOURCE)

    def ensure_index(self) -> bool:
        """Put the template and create the index if missing (idempotent, race-safe); True if
        this call created it."""
        body = self.template_body(self.index)
        created = self.elastic.ensure_index(self.index, template_name(self.index), body)
        if not created:
            self._add_new_fields(body["template"]["mappings"])
        return created

    def _add_new_fields(self, mappings: dict[str, Any]) -> None:
        """Put this version's mapping on the existing index: Elasticsearch adds the new fields
        and keeps the others (a put-mapping never changes a field's type: that is refused)."""
        try:
            self.elastic.put_mapping(self.index, mappings)
        except AuthorizationError:
            log.warning(
                "%s exists and its mapping could not be brought up to date (these credentials "
                "lack `write` on it, which covers put-mapping): documents with fields added "
                "since it was created may be refused; run `detector setup` once with an "
                "administrator's credentials",
                self.index,
            )
        except RequestError as error:
            log.warning("%s: its mapping cannot take this version's fields: %s", self.index, error)
