"""Notification channels: a name, a secret URL and what the channel does with many alerts. Pure.

A URL is a secret (a Slack or Teams webhook URL, a PagerDuty key, a mail password are all in
it): it is never logged, and errors show it masked (`mask`). `webhook+http://` and
`webhook+https://` are the detector's own webhook sink; every other URL goes to apprise.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

WEBHOOK, APPRISE = "webhook", "apprise"
WEBHOOK_SCHEMES = ("webhook+http", "webhook+https")
# Channel names become Elasticsearch field names (`detector.notifications.<name>`): no dots,
# no wildcards, short.
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class Channel:
    """One destination of notifications."""

    name: str
    url: str = field(repr=False)
    # Alerts of one execution above which the channel gets one summary instead (None: never).
    digest_threshold: int | None = None
    # HMAC-SHA256 key of the webhook's signature header (webhook channels only).
    secret: str | None = field(default=None, repr=False)
    # Where it is configured, for error messages: a file and its entry, or the setting.
    origin: str = field(default="DETECTOR_NOTIFY_URLS", compare=False)

    @property
    def kind(self) -> str:
        """`webhook` (our sink) or `apprise`."""
        return WEBHOOK if scheme(self.url) in WEBHOOK_SCHEMES else APPRISE

    @property
    def masked(self) -> str:
        """The URL as errors and logs may show it."""
        return mask(self.url)

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"


def scheme(url: str) -> str:
    """The URL's scheme, lowercase ('' when there is none)."""
    head, sep, _ = url.partition("://")
    return head.strip().lower() if sep else ""


def mask(url: str) -> str:
    """`scheme://***`: the scheme tells which service it is; the rest may hold a token."""
    found = scheme(url)
    return f"{found}://***" if found else "***"


def webhook_target(url: str) -> str:
    """The http(s) URL a `webhook+http(s)://` URL posts to."""
    return url.strip()[len("webhook+") :]


def webhook_problem(url: str) -> str | None:
    """Why a webhook URL is unusable, or None."""
    try:
        parts = urlsplit(webhook_target(url))
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "is not a valid URL (bad port?)"
    if not parts.hostname:
        return "has no host"
    return None


def unknown_url_problem(url: str) -> str:
    """Why apprise refused `url`, with the fix when it is a plain web address (apprise has no
    `http://` service: its JSON one is `json://`; the detector's webhook is `webhook+http://`)."""
    found = scheme(url)
    problem = "is not a URL apprise understands (see its list of services)"
    if found in ("http", "https"):
        return (
            f"{problem}; to POST each alert as JSON to it, write it webhook+{found}://... "
            f"(the same URL after 'webhook+')"
        )
    return problem


def url_name(url: str) -> str:
    """A stable name for a channel given only by its URL: `<service>-<8 hex of its hash>`.

    Stable across restarts and list reorderings (the delivery state is kept under it), and
    it reveals nothing of the URL.
    """
    service = re.sub(r"[^a-z0-9]", "", scheme(url).split("+")[0]) or "url"
    digest = hashlib.sha256(url.strip().encode("utf-8")).hexdigest()[:8]
    return f"{service[:20]}-{digest}"


def from_url_list(text: str, digest_threshold: int | None, secret: str | None) -> list[Channel]:
    """The channels of `DETECTOR_NOTIFY_URLS`: comma-separated URLs, each receiving every alert.

    A URL listed twice is one channel.
    """
    urls = dict.fromkeys(item.strip() for item in text.split(",") if item.strip())
    return [
        Channel(
            url_name(url),
            url,
            None if scheme(url) in WEBHOOK_SCHEMES else digest_threshold,
            secret if scheme(url) in WEBHOOK_SCHEMES else None,
            f"DETECTOR_NOTIFY_URLS: URL {number} ({url_name(url)})",
        )
        for number, url in enumerate(urls, start=1)
    ]


def severity_rank(severity: object) -> int:
    """low 0 ... critical 3; anything else ranks below low (-1)."""
    text = str(severity).lower()
    return SEVERITIES.index(text) if text in SEVERITIES else -1
