"""An index the detector owns (alerts, execution log): its composable template and creation.

Every request goes through `detector.es.Elastic`. The template `<index>-template` covers exactly
the index and `<index>-*` (a reindex target, a rollover), with the settings and mappings of a
packaged JSON file (`detector.index_templates`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from detector.es import Elastic
from detector.index_templates import index_template, template_name


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
        return self.elastic.ensure_index(
            self.index, template_name(self.index), self.template_body(self.index)
        )
