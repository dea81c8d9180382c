"""Installing the detector beside a cluster, and trying it on made-up data.

- `provision`: `detector setup`: index templates, the alerts and execution-log indices.
- `kibana`: the packaged saved objects (data view, dashboard) imported into Kibana.
- `demo`: `detector demo`: the scenario loaded, the last hour's executions replayed.
- `scenario` (pure): the demo's CloudTrail story as ECS documents.
"""

from __future__ import annotations

from detector.deployment.demo import DemoResult, demo_rules
from detector.deployment.kibana import Kibana
from detector.deployment.provision import install_templates, role_descriptor

__all__ = ["DemoResult", "Kibana", "demo_rules", "install_templates", "role_descriptor"]
