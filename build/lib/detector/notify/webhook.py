"""The JSON webhook (`webhook+http://`, `webhook+https://`): one POST per alert, for a SOAR.

The body is the full alert document (JSON, UTF-8, keys sorted). Headers:

- `Idempotency-Key`: the alert id, the same on every resend, so the receiver can drop
  duplicates (delivery is at least once);
- `X-Detector-Signature: sha256=<hex>`: HMAC-SHA256 of the exact body bytes with the shared
  secret, when one is configured, so the receiver can tell the detector sent it.

A 2xx answer is a delivery. Connection errors, timeouts, 408, 429 and 5xx are transient.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import urllib3

from detector import __version__
from detector.errors import NotifyError
from detector.notify.channels import Channel, webhook_target

SIGNATURE_HEADER = "X-Detector-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def body_bytes(document: Mapping[str, Any]) -> bytes:
    """The exact bytes posted (and signed)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def headers(channel: Channel, key: str, body: bytes) -> dict[str, str]:
    """The request headers of one POST."""
    found = {
        "Content-Type": "application/json",
        "User-Agent": f"newterms-detector/{__version__}",
        IDEMPOTENCY_HEADER: key,
    }
    if channel.secret:
        found[SIGNATURE_HEADER] = signature(channel.secret, body)
    return found


class Webhook:
    """POSTs JSON documents to one webhook channel."""

    def __init__(self, channel: Channel, timeout: float = 10.0) -> None:
        self.channel = channel
        self.http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(5.0, timeout), read=timeout), retries=False
        )

    def post(self, document: Mapping[str, Any], key: str) -> None:
        """POST `document` with `key` as its idempotency key; raises `NotifyError`."""
        body = body_bytes(document)
        try:
            response = self.http.request(
                "POST",
                webhook_target(self.channel.url),
                body=body,
                headers=headers(self.channel, key, body),
            )
        except urllib3.exceptions.HTTPError as exc:
            # The message can name the URL (a secret): only its class is shown.
            raise NotifyError(
                self.channel.name, f"cannot reach the webhook ({type(exc).__name__})"
            ) from None
        if not 200 <= response.status < 300:
            raise NotifyError(
                self.channel.name,
                f"the webhook answered HTTP {response.status}",
                transient=response.status in TRANSIENT_STATUSES,
            )
