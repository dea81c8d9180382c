"""Human channels through apprise (Slack, Teams, mail, PagerDuty, Discord, json://, ...).

apprise reports a failure as a false result and log records: those records (WARNING and up)
are captured during the send and become the error, with the URL masked (it is a secret).
"""

from __future__ import annotations

import logging

import apprise

from detector.errors import NotifyError, shorten
from detector.notify.channels import Channel
from detector.notify.message import Message

# Characters of apprise's own explanation kept in an error.
EXPLANATION_CHARS = 300


def understands(url: str) -> bool:
    """Whether apprise knows this URL's service and can parse it."""
    with apprise.LogCapture(level=logging.CRITICAL):  # its complaints are for `notify check`
        return bool(apprise.Apprise().add(url))


class AppriseChannel:
    """Sends titled plain-text messages to one apprise URL."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.apprise = apprise.Apprise()
        if not self.apprise.add(channel.url):
            raise NotifyError(
                channel.name, f"{channel.masked} is not a URL apprise understands", transient=False
            )

    def send(self, message: Message) -> None:
        """Send `message`; raises `NotifyError` with apprise's explanation."""
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = self.apprise.notify(
                body=message.body, title=message.title, body_format=apprise.NotifyFormat.TEXT
            )
        if not ok:
            text = captured.getvalue().replace(self.channel.url, self.channel.masked)
            lines = [line.split(" - ", 2)[-1] for line in text.splitlines() if line.strip()]
            explanation = shorten(
                " ".join(lines) or "apprise reported a failure", EXPLANATION_CHARS
            )
            raise NotifyError(self.channel.name, explanation)
