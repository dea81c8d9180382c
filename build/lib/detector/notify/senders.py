"""One sender per channel: the right transport and message, each send retried (tenacity).

Retries inside one send are few and short (transient failures only); a channel that is down
longer is retried by the later delivery passes (`detector.notify.delivery`), with a growing
pause, so a dead channel never holds a pass for long.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from detector.errors import NotifyError
from detector.notify import message
from detector.notify.channels import WEBHOOK, Channel
from detector.settings import Settings

Doc = Mapping[str, Any]


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, NotifyError) and exc.transient


class Sender:
    """Sends alerts, digests and test messages to one channel."""

    def __init__(self, channel: Channel, kibana_url: str | None, attempts: int = 3) -> None:
        self.channel = channel
        self.kibana_url = kibana_url
        self.attempts = attempts
        if channel.kind == WEBHOOK:
            from detector.notify.webhook import Webhook

            self._webhook: Any = Webhook(channel)
            self._apprise: Any = None
        else:  # lazy: apprise loads its plugins on import (~0.3 s)
            from detector.notify.apprise_channel import AppriseChannel

            self._webhook, self._apprise = None, AppriseChannel(channel)

    @property
    def digests(self) -> bool:
        """Whether many alerts of one execution may go as one summary (not for webhooks)."""
        return self._webhook is None and self.channel.digest_threshold is not None

    def _retried(self, send: Callable[[], None]) -> None:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.5, max=4),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        retrying(send)

    def alert(self, doc: Doc) -> None:
        """Deliver one alert (the full document to a webhook, its message elsewhere)."""
        if self._webhook is not None:
            self._retried(lambda: self._webhook.post(doc, message.alert_id(doc)))
        else:
            text = message.alert_message(doc, self.kibana_url)
            self._retried(lambda: self._apprise.send(text))

    def digest(self, docs: Sequence[Doc]) -> None:
        """Deliver one summary of many alerts."""
        text = message.digest_message(docs, self.kibana_url)
        self._retried(lambda: self._apprise.send(text))

    def probe(self) -> None:
        """Send a test message (`detector notify test`)."""
        text = message.probe_message(self.channel.name)
        if self._webhook is not None:
            probe = {
                "test": True,
                "channel": self.channel.name,
                "title": text.title,
                "message": text.body,
            }
            self._retried(lambda: self._webhook.post(probe, f"test-{uuid.uuid4().hex}"))
        else:
            self._retried(lambda: self._apprise.send(text))


def senders_for(channels: Sequence[Channel], settings: Settings) -> dict[str, Sender]:
    """A sender per channel, by name."""
    return {
        channel.name: Sender(channel, settings.kibana_public_url, settings.notify_retry_attempts)
        for channel in channels
    }
