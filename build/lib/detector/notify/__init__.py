"""Notifications: every alert an execution created reaches its channels at least once.

- `channels` (pure): a channel (name, secret URL, kind, digest threshold), URL masking, the
  channels of `DETECTOR_NOTIFY_URLS`.
- `routing` (pure): the routing TOML file (`DETECTOR_NOTIFICATIONS_FILE`): named channels,
  routes (rule ids, tags, minimum severity), every problem named with file and entry.
- `message` (pure): the text of one alert, of a digest, of a test message.
- `state` (pure): the delivery state kept in each alert (`detector.notifications.<channel>`)
  and the searches over it.
- `marks`: the pending marks written *with* each created alert (one `create`), so a crash
  between writing an alert and notifying it loses nothing.
- `webhook`, `apprise_channel`, `senders` (I/O): sending, with retries (tenacity).
- `delivery` (I/O): one delivery pass over the pending alerts, oldest first, each sent mark a
  conditional update; `notifier`: the background thread of `detector run`.
"""

# Only the pure parts are imported here: the senders load apprise, which is slow to import, so
# the commands import `notifier` and `delivery` when they need them.
from detector.notify.channels import Channel, mask
from detector.notify.routing import Route, Routing, from_settings

__all__ = ["Channel", "Route", "Routing", "from_settings", "mask"]
