"""Warnings at apply time for literal secrets written into an McpServer's ``env``/``headers``.

A literal value is stored in SQLite and pinned into every execution's workflow input (and so its
history). That is fine for ``LOG_LEVEL: debug`` and wrong for a token, so ``apply`` warns when a
literal looks like a key: well-known key prefixes (``sk-``, ``ghp_``, ``xoxb-``, ``AKIA``...), a JWT,
or a long high-entropy token. The warning names the document and the field and shows the value
masked only (``stigmer.config.masking.mask``); it suggests the secret store and ``valueFrom``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

from ..config.grants import REF
from ..config.masking import mask
from .models import McpServer, Resource, ValueFrom

_PREFIXES = re.compile(
    r"(?<![A-Za-z0-9_])(sk-ant-|sk-|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|xox[abpr]-|glpat-|AIza|hf_|npm_|pypi-|shpat_|rk_live_|"
    r"sk_live_|SG\.)[A-Za-z0-9_\-.=]{8,}|\b(AKIA|ASIA)[0-9A-Z]{16}\b")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-.]{24,}")
_AUTH_SCHEME = re.compile(r"^(Bearer|Basic|Token|token|Bot|ApiKey)\s+", re.IGNORECASE)
MIN_ENTROPY = 3.5
"""Bits per character above which a long run of token characters reads as random (a hex key is 4.0)."""


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _random_looking(word: str) -> bool:
    if not _TOKEN.fullmatch(word) or word.startswith((".", "/", "~")) or "://" in word:
        return False
    if not (re.search(r"\d", word) and re.search(r"[A-Za-z]", word)):
        return False
    if "/" in word and not (re.search(r"[a-z]", word) and re.search(r"[A-Z]", word)):
        return False  # a path (``projects/p-1234/locations``); base64 with a ``/`` mixes cases
    return _entropy(word) >= MIN_ENTROPY


def looks_like_key(value: str) -> bool:
    """True when the literal parts of ``value`` (references left out) look like a credential."""
    literal = REF.sub(" ", value)
    if _PREFIXES.search(literal) or _JWT.search(literal):
        return True
    return any(_random_looking(word) for word in _AUTH_SCHEME.sub("", literal.strip()).split())


def _literals(server: McpServer) -> Iterable[tuple[str, str, str]]:
    """``(field, key, value)`` of every literal env/header value (valueFrom values hold no secret)."""
    spec = server.spec
    pairs = ([("spec.stdio.env", spec.stdio.env)] if spec.stdio else []) + (
        [("spec.http.headers", spec.http.headers)] if spec.http else [])
    for prefix, values in pairs:
        for key, value in values.items():
            if not isinstance(value, ValueFrom):
                yield f"{prefix}.{key}", key, value


def _advice(key: str, value: str) -> tuple[str, str]:
    """The masked value and what to write instead (a header keeps its scheme: ``"Bearer ${NAME}"``)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", key).upper().lstrip("0123456789_") or "TOKEN"
    scheme = _AUTH_SCHEME.match(value.strip())
    if scheme:
        token = value.strip()[scheme.end():]
        return (mask(token) or "", f"store the token with `stigmer secret set {name}` and write "
                f"`{key}: \"{scheme.group(1)} ${{{name}}}\"` instead")
    return (mask(value) or "", f"store it with `stigmer secret set {name}` and write "
            f"`{key}: {{valueFrom: {{secret: {name}}}}}` instead")


def literal_secret_warnings(resources: Iterable[Resource], source: str = "<input>") -> list[str]:
    """One warning per literal value that looks like a key, naming the document and the field (value masked)."""
    out = []
    for index, res in enumerate(resources, start=1):
        if not isinstance(res, McpServer):
            continue
        for field, key, value in _literals(res):
            if looks_like_key(value):
                masked, advice = _advice(key, value)
                out.append(f"{source}, document {index} (McpServer {res.name!r}): {field} looks like a secret "
                           f"({masked}); written here it is stored in the database and in every execution's "
                           f"history → {advice}")
    return out
