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


_URL_SECRETS = ("password", "sslpassword")  # libpq's query parameters that carry a secret


def url_password(url: str) -> str | None:
    """The password a database URL carries (``user:PASSWORD@host`` or ``?password=``), else None."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.password:
        return parts.password
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() in _URL_SECRETS and value:
            return value
    return None


def mask_url(url: str | None) -> str | None:
    """A URL with its password replaced by ``***`` (user, host, database and options kept): what a person may see."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    if url is None or url_password(url) is None:
        return url
    parts = urlsplit(url.strip())
    netloc = parts.netloc
    if parts.password:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    query = urlencode([(name, "***" if name.lower() in _URL_SECRETS else value)
                       for name, value in parse_qsl(parts.query, keep_blank_values=True)], safe="*/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, url: str | None) -> str:
    """``text`` without the password of ``url`` (raw or percent-decoded): for errors a driver words with the URL."""
    from urllib.parse import quote, unquote

    secret = url_password(url) if url else None
    if not secret:
        return text
    for form in {secret, unquote(secret), quote(secret, safe="")}:
        if form:
            text = text.replace(form, "***")
    return text
