"""Raw CloudTrail logs into the ECS documents Elastic's AWS integration indexes.

- `files` (pure: reads files): raw records out of log files and folders, bad records located.
- `ecs` (pure): one raw record into the ECS document the `aws.cloudtrail` pipeline makes.
- `categories` (pure): the integration's ECS categorisation table.
- `javamap` (pure): how the pipeline's Java maps print a parsed JSON object.
- `importer`: `detector import cloudtrail`: the records written to `logs-aws.cloudtrail-*`.
  It holds the Elasticsearch client, so this face leaves it out: `detector import`'s parser
  reads `files` at start-up, which must not load the client (import `importer` by its name).
"""

from __future__ import annotations

from detector.cloudtrail.ecs import index_name, to_ecs
from detector.cloudtrail.files import DEFAULT_NAMESPACE, RawRecord, log_files, read_records

__all__ = [
    "DEFAULT_NAMESPACE",
    "RawRecord",
    "index_name",
    "log_files",
    "read_records",
    "to_ecs",
]
