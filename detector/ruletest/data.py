"""The mappings of a test's throw-away data indices: Elastic's CloudTrail integration's. Pure.

Its ECS fields are typed as the integration types them (`source.ip` ip, `event.ingested` date,
`aws.cloudtrail.flattened.*` flattened...), and its dynamic template maps every other string to
`keyword`, as ECS indices do, so other data gets keyword fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The one import of the template (it is moving to `detector.cloudtrail.template`).
from detector.cloudtrail.template import ECS_MAPPINGS
from detector.ruletest.scaffold import mapping_types

PURPOSE = "rules test"


def data_mappings(marker: str) -> dict[str, Any]:
    """The mapping of a test's data index, marked as the detector's (`_meta`)."""
    return {"_meta": {"managed_by": marker, "purpose": PURPOSE}, **ECS_MAPPINGS}


def field_types() -> Callable[[str], str]:
    """A field's type in a test's data index."""
    return mapping_types(ECS_MAPPINGS)
