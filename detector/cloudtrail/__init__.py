"""Raw CloudTrail logs into the ECS documents Elastic's AWS integration indexes.

- `files` (pure: reads files): raw records out of log files and folders, bad records located.
- `ecs` (pure): one raw record into the ECS document the `aws.cloudtrail` pipeline makes.
- `categories` (pure): the integration's ECS categorisation table.
- `javamap` (pure): how the pipeline's Java maps print a parsed JSON object.
- `template` (pure): the integration's mapping and the one index template of a CloudTrail index
  the detector creates (the import's, the demo's).
- `importer`: `detector import cloudtrail`: the records written to `logs-aws.cloudtrail-*`.
  It holds the Elasticsearch client, so this face leaves it out: `detector import`'s parser
  reads `files` at start-up, which must not load the client (import `importer` by its name).
"""

from __future__ import annotations

from detector.cloudtrail.ecs import index_name, to_ecs
from detector.cloudtrail.files import DEFAULT_NAMESPACE, RawRecord, log_files, read_records
from detector.cloudtrail.template import ECS_MAPPINGS, index_template

__all__ = [
    "DEFAULT_NAMESPACE",
    "ECS_MAPPINGS",
    "RawRecord",
    "index_name",
    "index_template",
    "log_files",
    "read_records",
    "to_ecs",
]
