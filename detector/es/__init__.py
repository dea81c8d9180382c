"""Elasticsearch: the only package that holds the client.

- `client`: `Elastic`, the one object that talks to Elasticsearch (retries, timeouts, errors
  mapped to `detector.errors`); every other module asks through it.
- `own_index`: an index the detector owns (alerts, execution log): its template and creation,
  and this version's fields put on an older index.
- `templates` (pure): the composable index templates and the packaged mapping files.
"""

from __future__ import annotations

from detector.es.client import Elastic
from detector.es.own_index import OwnIndex
from detector.es.responses import BulkResult, Versioned
from detector.es.templates import MANAGED_BY, load_resource, template_name, template_priority

__all__ = [
    "MANAGED_BY",
    "BulkResult",
    "Elastic",
    "OwnIndex",
    "Versioned",
    "load_resource",
    "template_name",
    "template_priority",
]
