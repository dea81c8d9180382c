"""The alerts: Kibana-style alert documents, and the index that holds them.

- `document` (pure): `build_alert`: a new term and its first event into a Kibana Security alert
  with a deterministic `_id`.
- `reason` (pure): `kibana.alert.reason`, one readable sentence.
- `promotion` (pure): the ECS fields that make an alert promotable by Kibana's External Alerts
  rule.
- `s3_location` (pure): the S3 bucket and object of a CloudTrail event.
- `store`: the alerts index: the same-episode check and the bulk writes (`op_type: create`).
"""

from __future__ import annotations

from detector.alerts.document import alert_id, build_alert, sanitize_source, term_key
from detector.alerts.s3_location import S3Location, s3_location
from detector.alerts.store import AlertStore

__all__ = [
    "AlertStore",
    "S3Location",
    "alert_id",
    "build_alert",
    "s3_location",
    "sanitize_source",
    "term_key",
]
