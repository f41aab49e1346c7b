"""Provider failures, each with what to do next and whether retrying can help.

Temporal owns retries (SDK clients are built with ``max_retries=0``), so every failure the
provider layer lets out is a :class:`ProviderError` that says whether it is worth retrying and,
when the server said so, after how long. The constructors below are the only place these
messages are worded, so a person sees the same advice from the CLI, the runner and the daemon.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ..errors import StigmerError

# Which variable holds each cloud provider's key (named in messages, never the key itself).
KEY_VARIABLES = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}


class ProviderError(StigmerError):
    """An LLM call (or the check before it) failed.

    Attributes:
        retryable: whether the same call may succeed later (rate limit, overload, 5xx, reset).
        retry_after: seconds the server asked us to wait, when it said (``retry-after``).
        kind: a short stable code (``unreachable``, ``model_not_found``, ``no_tools``, ``auth``,
            ``rate_limited``, ``overloaded``, ``server_error``, ``connection``, ``context_overflow``,
            ``bad_request``, ``unknown``) for code that must branch on the cause.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None, kind: str = "unknown",
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable
        self.retry_after = retry_after
        self.kind = kind
        self.exit_code = 1 if retryable else 2

    def __reduce__(self) -> tuple[object, ...]:
        # Exceptions pickle through their args; keep the keyword fields across process boundaries.
        return (_rebuild, (self.message, self.retryable, self.retry_after, self.kind, self.hint))


def _rebuild(message: str, retryable: bool, retry_after: float | None, kind: str, hint: str | None) -> ProviderError:
    return ProviderError(message, retryable=retryable, retry_after=retry_after, kind=kind, hint=hint)


def _in_container() -> bool:
    return os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")


def _loopback(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    return host in ("localhost", "127.0.0.1", "::1")


def ollama_unreachable(base_url: str) -> ProviderError:
    """Nothing answers at the Ollama URL: say how to start it or point elsewhere, never "Connection refused"."""
    hint = ("start it with `ollama serve` (or `stigmer local start`, which starts it), or point stigmer at "
            "another server with OLLAMA_HOST / --llm-base-url")
    if _in_container() and _loopback(base_url):
        hint += "; inside a container 127.0.0.1 is the container itself: use the host's address"
    return ProviderError(f"Ollama is not running at {base_url}", retryable=True, kind="unreachable", hint=hint)


def server_unreachable(provider: str, base_url: str) -> ProviderError:
    """An OpenAI-compatible or embedded server does not answer."""
    if provider == "llamacpp":
        hint = "start the local stack with `stigmer local start` (it runs the embedded llama.cpp server)"
    else:
        hint = f"check that the server at {base_url} is running, or fix --llm-base-url / STIGMER_LLM_BASE_URL"
    if _in_container() and _loopback(base_url):
        hint += "; inside a container 127.0.0.1 is the container itself: use the host's address"
    return ProviderError(f"cannot reach the {provider} server at {base_url}", retryable=True, kind="unreachable",
                         hint=hint)


def model_not_pulled(model: str) -> ProviderError:
    return ProviderError(f"the Ollama model {model!r} is not pulled on this machine", retryable=False,
                         kind="model_not_found", hint=f"pull it with `stigmer llm pull {model}`")


def model_not_found(provider: str, model: str, detail: str = "") -> ProviderError:
    extra = f" ({detail})" if detail else ""
    return ProviderError(f"{provider} has no model {model!r}{extra}", retryable=False, kind="model_not_found",
                         hint="check the name with `stigmer llm resolve NAME`, or use another --llm-model")


def no_tools(provider: str, model: str, alternatives: list[str]) -> ProviderError:
    names = ", ".join(alternatives) if alternatives else "a model that supports tool calling"
    return ProviderError(f"the {provider} model {model!r} does not support tool calling, and this agent uses tools",
                         retryable=False, kind="no_tools",
                         hint=f"use a model with tool support, e.g. {names} (set the agent's model or --llm-model)")


def key_missing(provider: str) -> ProviderError:
    var = KEY_VARIABLES.get(provider, "STIGMER_LLM_API_KEY")
    return ProviderError(f"no API key for {provider}", retryable=False, kind="auth",
                         hint=f"set {var} (or `stigmer config set llm.api_key ...`)")


def key_rejected(provider: str) -> ProviderError:
    var = KEY_VARIABLES.get(provider, "STIGMER_LLM_API_KEY")
    return ProviderError(f"{provider} rejected the API key (401 Unauthorized)", retryable=False, kind="auth",
                         hint=f"check {var} (or llm.api_key): it is wrong, revoked or for another account")


def rate_limited(provider: str, retry_after: float | None) -> ProviderError:
    wait = f"; the server asked to wait {retry_after:g}s" if retry_after is not None else ""
    return ProviderError(f"{provider} rate limit reached (429){wait}", retryable=True, retry_after=retry_after,
                         kind="rate_limited", hint="stigmer retries on its own; lower the concurrency if it persists")


def overloaded(provider: str, retry_after: float | None) -> ProviderError:
    return ProviderError(f"{provider} is overloaded (529)", retryable=True, retry_after=retry_after, kind="overloaded",
                         hint="a temporary condition at the provider: stigmer retries on its own")


def server_error(provider: str, status: int, retry_after: float | None, detail: str = "") -> ProviderError:
    extra = f": {detail}" if detail else ""
    return ProviderError(f"{provider} server error ({status}){extra}", retryable=True, retry_after=retry_after,
                         kind="server_error", hint="usually temporary: stigmer retries on its own")


def connection_lost(provider: str, detail: str) -> ProviderError:
    return ProviderError(f"the connection to {provider} was lost mid-call ({detail})", retryable=True,
                         kind="connection", hint="usually temporary: stigmer retries on its own")


def context_overflow(provider: str, model: str, detail: str = "") -> ProviderError:
    extra = f" ({detail})" if detail else ""
    return ProviderError(f"the conversation no longer fits in {provider} model {model!r}'s context window{extra}",
                         retryable=False, kind="context_overflow",
                         hint="shorten the input, use a model with a longer context, or for local models raise "
                              "llm.num_ctx (`stigmer config set llm.num_ctx 16384`)")


def bad_request(provider: str, status: int, detail: str) -> ProviderError:
    return ProviderError(f"{provider} refused the request ({status}): {detail}", retryable=False, kind="bad_request",
                         hint="check the model name and parameters with `stigmer llm resolve NAME`")
