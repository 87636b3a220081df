"""Storage URLs as they may be shown: never with their password."""

from __future__ import annotations

import re


def mask_url(url: str | None) -> str:
    """A storage URL without its password, safe to print and to write into files."""
    if url is None:
        return ""
    url = re.sub(r"(?i)([?&](?:password|pwd)=)[^&]*", r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
