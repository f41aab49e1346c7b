"""Masking of secrets for every place a value is shown."""

from __future__ import annotations

import re

_PREFIX = re.compile(r"^([A-Za-z]{2,5}-(?:[A-Za-z]{2,8}-)?)")


def mask(secret: str | None) -> str | None:
    """Show enough of a key to recognise it, never enough to use it: ``sk-ant-…f00d``."""
    if secret is None:
        return None
    if len(secret) < 12:
        return "…" * 3
    match = _PREFIX.match(secret)
    prefix = match.group(1) if match and len(match.group(1)) <= 8 else ""
    return f"{prefix}…{secret[-4:]}"
