"""The settings stigmer resolves: their dotted keys, types, defaults and the variables that set them.

This table is the single place a setting is declared. ``resolve()`` walks it, ``config set``
validates against it, ``config show`` lists it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import envvars as ev

PROVIDERS = ("anthropic", "ollama", "openai", "llamacpp")

# Default model per provider. Defaults live once: every component reads them from here.
DEFAULT_MODELS: dict[str, str] = {
    "anthropic": "claude-sonnet-5-5",
    "ollama": "qwen2.5-coder:7b",
    "openai": "gpt-5-mini",
    "llamacpp": "smollm2-135m",
}

# Default reply budget per provider when llm.max_tokens is unset: what the upstream runner uses (local models
# 8192, cloud models 20000). The provider layer caps it at a model's own output limit where it knows one.
DEFAULT_MAX_TOKENS: dict[str, int] = {"anthropic": 20_000, "openai": 20_000, "ollama": 8192, "llamacpp": 8192}
LOCAL_MAX_TOKENS = 8192

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
DEFAULT_LLAMACPP_URL = "http://127.0.0.1:18434/v1"
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_ANTHROPIC_URL = "https://api.anthropic.com"


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _parse_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected an integer, got {raw!r}")
    if isinstance(raw, int):
        return raw
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {raw!r}") from None


def _parse_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"expected a number, got {raw!r}")
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {raw!r}") from None


def _parse_str(raw: Any) -> str:
    if isinstance(raw, (dict, list)) or raw is None:
        raise ValueError(f"expected a string, got {raw!r}")
    return str(raw)


def _parse_duration_text(raw: Any) -> str:
    """A duration, kept as the person wrote it (normalised): ``30d``; ``0`` means never."""
    from .durations import format_duration, parse_duration

    return format_duration(parse_duration(raw))


def _mask_url(value: Any) -> Any:
    from .masking import mask_url

    return mask_url(value) if isinstance(value, str) else value


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _parse_names(raw: Any) -> tuple[str, ...]:
    """Environment variable names: a YAML list or a comma-separated string (``GITHUB_TOKEN,JIRA_URL``)."""
    items = raw if isinstance(raw, (list, tuple)) else str(raw if raw is not None else "").split(",")
    names = tuple(str(item).strip() for item in items if str(item).strip())
    bad = [name for name in names if not _ENV_NAME.match(name)]
    if bad:
        raise ValueError(f"not an environment variable name: {', '.join(map(repr, bad))}")
    return names


CONTEXT_STRATEGIES = ("summarize", "drop", "fail")


def _one_of(choices: tuple[str, ...], what: str) -> Callable[[Any], str]:
    """A parser of one word from ``choices`` (case-insensitive), refusing others with a did-you-mean."""

    def parse(raw: Any) -> str:
        text = str(raw).strip().lower()
        if text not in choices:
            from ._suggest import did_you_mean

            raise ValueError(f"unknown {what} {raw!r}{did_you_mean(text, choices)}; choose one of "
                             f"{', '.join(choices)}")
        return text

    return parse


_parse_context_strategy = _one_of(CONTEXT_STRATEGIES, "strategy")


# How a model calls tools: decided per model (auto), or forced. See stigmer.providers.toolmode.
TOOL_CALL_MODES = ("auto", "native", "emulated", "none")


_parse_tool_calls = _one_of(TOOL_CALL_MODES, "tool-call mode")


def _parse_provider(raw: Any) -> str:
    text = _parse_str(raw).strip().lower()
    if text not in PROVIDERS:
        from ._suggest import did_you_mean

        choices = ", ".join(PROVIDERS)
        raise ValueError(f"unknown provider {raw!r}{did_you_mean(text, PROVIDERS)}; choose one of {choices}")
    return text


def _parse_blobs_url(raw: Any) -> str:
    """Where blobs live: empty, ``file://PATH`` or ``s3://BUCKET[/PREFIX]``; no credentials."""
    from urllib.parse import urlsplit

    text = _parse_str(raw).strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme == "file":
        if not parts.path or parts.netloc not in ("", "localhost"):
            raise ValueError(f"expected file:///ABSOLUTE/PATH, got {text!r}")
        return text
    if parts.scheme == "s3":
        if "@" in parts.netloc or parts.password or parts.query or parts.fragment:
            raise ValueError("an s3:// URL names only the bucket and a prefix (s3://BUCKET/PREFIX); credentials "
                             "come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS credential chain")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", parts.netloc):
            raise ValueError(f"not an S3 bucket name: {parts.netloc!r} (expected s3://BUCKET/PREFIX)")
        return text
    scheme = parts.scheme or "no scheme"
    raise ValueError(f"unsupported blob store {scheme!r}: use file:///PATH or s3://BUCKET/PREFIX (empty: "
                     "files under $STIGMER_HOME/blobs)")


def _parse_threshold(raw: Any) -> int:
    value = _parse_int(raw)
    if not 256 <= value <= 1_048_576:
        raise ValueError(f"expected a size in bytes from 256 to 1048576 (1 MiB), got {value}: history wants payloads "
                         "far under Temporal's 2 MB limit, and references themselves take ~200 bytes")
    return value


def _parse_http_url(raw: Any) -> str:
    from urllib.parse import urlsplit

    text = _parse_str(raw).strip()
    parts = urlsplit(text)
    if text and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    if parts.username or parts.password:
        raise ValueError("the endpoint URL must not carry credentials: use the AWS credential variables")
    return text


DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")


def _parse_database_url(raw: Any) -> str:
    """The store of ``stigmer server``: ``sqlite:///ABSOLUTE/PATH`` or ``postgresql://USER@HOST[:PORT]/DB``.

    Error messages show the URL masked: it may hold a password.
    """
    from urllib.parse import urlsplit

    from .masking import mask_url

    text = _parse_str(raw).strip()
    if not text:
        return ""
    shown = mask_url(text)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError as exc:
        raise ValueError(f"not a database URL ({exc}): {shown!r}") from None
    scheme = parts.scheme.lower()
    if scheme not in DATABASE_SCHEMES:
        raise ValueError(f"unsupported database {parts.scheme or 'without a scheme'!r} in {shown!r}: use "
                         "postgresql://USER@HOST:5432/DB or sqlite:///ABSOLUTE/PATH")
    if scheme == "sqlite" and (parts.netloc or not parts.path.startswith("/") or parts.path.strip("/") == ""):
        raise ValueError(f"expected sqlite:///ABSOLUTE/PATH (a file), got {shown!r}")
    if scheme != "sqlite" and (not parts.path.strip("/") or any(c.isspace() for c in text)):
        raise ValueError(f"expected postgresql://USER@HOST:5432/DATABASE (the database name is missing or the URL "
                         f"has spaces), got {shown!r}")
    return text


def _parse_networks(raw: Any) -> tuple[str, ...]:
    """IP addresses or CIDR networks: a YAML list or a comma-separated string (``10.0.0.0/8,127.0.0.1``)."""
    import ipaddress

    items = raw if isinstance(raw, (list, tuple)) else str(raw if raw is not None else "").split(",")
    names = tuple(str(item).strip() for item in items if str(item).strip())
    for name in names:
        try:
            ipaddress.ip_network(name, strict=False)
        except ValueError:
            raise ValueError(f"not an IP address or CIDR network: {name!r} (e.g. 10.0.0.5 or 10.0.0.0/8)") from None
    return names


def _parse_bind_address(raw: Any) -> str:
    """``host:port`` (``[::1]:port`` for IPv6) a server may bind; empty: none."""
    text = _parse_str(raw).strip()
    if not text:
        return ""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected host:port (e.g. 127.0.0.1:9464, 0.0.0.0:9464 or [::1]:9464), got {text!r}")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise ValueError(f"put an IPv6 address in brackets: [{host}]:{port}")
    return text


def _range(parse: Callable[[Any], Any], low: float, high: float) -> Callable[[Any], Any]:
    def check(raw: Any) -> Any:
        value = parse(raw)
        if not low <= value <= high:
            raise ValueError(f"expected a value between {low:g} and {high:g}, got {value!r}")
        return value

    return check


@dataclass(frozen=True)
class Key:
    """One setting.

    Attributes:
        name: the dotted key, e.g. ``llm.provider``.
        parse: turns raw text or YAML into the typed value; raises ValueError with a reason.
        help: one line for ``config show`` and the docs.
        env: environment variables that set it, in precedence order.
        secret: masked in every output.
        default: the default when nothing sets it (None: computed by resolve()).
        show: how a person sees the value (default: the value, or masked when ``secret``); a database URL shows
            everything but its password.
    """

    name: str
    parse: Callable[[Any], Any]
    help: str
    env: tuple[str, ...] = ()
    secret: bool = False
    default: Any = None
    nested: tuple[str, ...] = field(default=())
    show: Callable[[Any], Any] | None = None


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("llm.provider", _parse_provider, "LLM provider: anthropic, ollama, openai or llamacpp",
            (ev.LLM_PROVIDER, ev.SHORT_LLM_PROVIDER)),
        Key("llm.model", _parse_str, "model name, alias or provider:model id", (ev.LLM_MODEL, ev.SHORT_LLM_MODEL)),
        Key("llm.base_url", _parse_str, "base URL of the provider's API", (ev.LLM_BASE_URL,)),
        Key("llm.api_key", _parse_str, "API key of the provider (masked)", (ev.LLM_API_KEY,), secret=True),
        # No fixed default: per provider (DEFAULT_MAX_TOKENS), capped at the model's own output limit.
        Key("llm.max_tokens", _range(_parse_int, 1, 1_000_000),
            "maximum tokens per reply (unset: 8192 local, 20000 cloud, capped at the model's limit)",
            (ev.LLM_MAX_TOKENS,)),
        # No default: each model's own. Claude Sonnet 5.5 refuses any non-default temperature.
        Key("llm.temperature", _range(_parse_float, 0.0, 2.0), "sampling temperature (unset: the model's default)",
            (ev.LLM_TEMPERATURE,)),
        Key("llm.num_ctx", _range(_parse_int, 256, 1_048_576), "context window asked of local models",
            (ev.LLM_NUM_CTX,), default=8192),
        Key("llm.context_tokens", _range(_parse_int, 0, 10_000_000),
            "context window a conversation is fitted to, in tokens (0: the model's own, as known)",
            (ev.LLM_CONTEXT_TOKENS,), default=0),
        Key("llm.context_strategy", _parse_context_strategy,
            "when a conversation outgrows the window: summarize (drop old tool outputs, then summarise old turns), "
            "drop (drop old tool outputs only) or fail", (ev.LLM_CONTEXT_STRATEGY,), default="summarize"),
        Key("llm.tool_calls", _parse_tool_calls,
            "how models call tools: auto (native where the model supports it, else emulated where the server can "
            "constrain output to a JSON schema), native, emulated or none", (ev.LLM_TOOL_CALLS,), default="auto"),
        Key("temporal.managed", _parse_bool, "start a local Temporal dev server (false: use temporal.address)",
            (ev.STIGMER_TEMPORAL_MANAGED,)),
        Key("temporal.address", _parse_str, "host:port of the Temporal frontend",
            (ev.TEMPORAL_ADDRESS, ev.TEMPORAL_SERVICE_ADDRESS)),
        Key("temporal.namespace", _parse_str, "Temporal namespace", (ev.TEMPORAL_NAMESPACE,), default="default"),
        Key("temporal.api_key", _parse_str, "Temporal Cloud API key (masked)", (ev.TEMPORAL_API_KEY,), secret=True),
        Key("temporal.port", _range(_parse_int, 1, 65535), "port of the managed Temporal dev server",
            (ev.STIGMER_TEMPORAL_PORT,), default=7233),
        Key("temporal.ui_port", _range(_parse_int, 1, 65535), "port of the managed Temporal web UI",
            (ev.STIGMER_TEMPORAL_UI_PORT,), default=8233),
        Key("temporal.tls.enabled", _parse_bool, "connect to Temporal over TLS", (ev.TEMPORAL_TLS,), default=False),
        Key("temporal.tls.client_cert", _parse_str, "client certificate path (mTLS)",
            (ev.TEMPORAL_TLS_CLIENT_CERT_PATH,)),
        Key("temporal.tls.client_key", _parse_str, "client key path (mTLS)", (ev.TEMPORAL_TLS_CLIENT_KEY_PATH,)),
        Key("temporal.tls.server_ca", _parse_str, "server CA certificate path", (ev.TEMPORAL_TLS_SERVER_CA_CERT_PATH,)),
        Key("temporal.tls.server_name", _parse_str, "TLS server name override", (ev.TEMPORAL_TLS_SERVER_NAME,)),
        Key("runner.task_queue", _parse_str, "Temporal task queue the runners poll",
            (ev.RUNNER_TASK_QUEUE, ev.UPSTREAM_TASK_QUEUE, ev.UPSTREAM_RUNNER_TASK_QUEUE), default="stigmer-agents"),
        Key("runner.workers", _range(_parse_int, 0, 64), "runner processes the daemon starts", (ev.RUNNER_WORKERS,),
            default=1),
        Key("runner.max_concurrent", _range(_parse_int, 1, 10_000), "concurrent activities per runner",
            (ev.RUNNER_MAX_CONCURRENT, ev.UPSTREAM_MAX_CONCURRENCY), default=50),
        Key("runner.cached_workflows", _range(_parse_int, 0, 100_000),
            "executions and sessions a runner keeps in memory between their steps (0: none; others replay)",
            (ev.RUNNER_CACHED_WORKFLOWS,), default=100),
        Key("runner.metrics_address", _parse_bind_address,
            "host:port where a runner serves the Temporal SDK's metrics for Prometheus (empty: none; one per runner)",
            (ev.RUNNER_METRICS_ADDRESS,), default=""),
        Key("server.host", _parse_str,
            "address the API binds (the local daemon: loopback only; stigmer server: any, with TLS or a proxy)",
            (ev.SERVER_HOST,), default="127.0.0.1"),
        Key("server.port", _range(_parse_int, 1, 65535), "port of the API", (ev.SERVER_PORT,),
            default=7780),
        Key("server.database_url", _parse_database_url,
            "database of `stigmer server`: postgresql://USER@HOST/DB or sqlite:///PATH (empty: "
            "$STIGMER_HOME/data/stigmer.db); its password is masked", (ev.DATABASE_URL,), secret=True,
            show=_mask_url),
        Key("server.tls.cert", _parse_str, "certificate file (PEM) `stigmer server` serves HTTPS with",
            (ev.SERVER_TLS_CERT,)),
        Key("server.tls.key", _parse_str, "private key file (PEM) of server.tls.cert", (ev.SERVER_TLS_KEY,)),
        Key("server.behind_proxy", _parse_bool,
            "`stigmer server` is reached through a reverse proxy that terminates TLS (allows a non-loopback host "
            "without TLS; forwarded headers are trusted from server.trusted_proxies only)",
            (ev.SERVER_BEHIND_PROXY,), default=False),
        Key("server.trusted_proxies", _parse_networks,
            "addresses or CIDR networks whose X-Forwarded-For/-Proto headers count (with server.behind_proxy)",
            (ev.SERVER_TRUSTED_PROXIES,), default=("127.0.0.1", "::1")),
        Key("limits.request_bytes", _range(_parse_int, 1024, 1 << 30), "largest API request body, in bytes (413 above)",
            (ev.LIMIT_REQUEST_BYTES,), default=8 * 1024 * 1024),
        Key("limits.message_chars", _range(_parse_int, 1, 10_000_000), "longest message a person may send (characters)",
            (ev.LIMIT_MESSAGE_CHARS,), default=200_000),
        Key("limits.write_file_bytes", _range(_parse_int, 1, 1 << 34), "largest file write_file may write, in bytes",
            (ev.LIMIT_WRITE_FILE_BYTES,), default=10 * 1024 * 1024),
        Key("limits.tool_output_chars", _range(_parse_int, 256, 10_000_000),
            "longest tool output kept in the conversation, in characters (the rest is cut with a note)",
            (ev.LIMIT_TOOL_OUTPUT_CHARS,), default=64 * 1024),
        Key("limits.subscriber_queue", _range(_parse_int, 16, 1_000_000),
            "events buffered per live stream reader before it is told it fell behind (it then resumes from the store)",
            (ev.LIMIT_SUBSCRIBER_QUEUE,), default=1000),
        Key("retention.executions", _parse_duration_text,
            "finished executions older than this are deleted with their events (0: keep for ever)",
            (ev.RETENTION_EXECUTIONS,), default="30d"),
        Key("blobs.url", _parse_blobs_url,
            "where payloads too large for history are kept: file:///PATH or s3://BUCKET/PREFIX "
            "(empty: $STIGMER_HOME/blobs)", (ev.BLOBS_URL,), default=""),
        Key("blobs.threshold", _parse_threshold,
            "payloads of at least this many bytes go to the blob store; history keeps a small reference",
            (ev.BLOBS_THRESHOLD,), default=4096),
        Key("blobs.s3_endpoint", _parse_http_url,
            "endpoint of an S3-compatible store for s3:// blob URLs (unset: AWS's own)",
            (ev.BLOBS_S3_ENDPOINT, ev.AWS_ENDPOINT_URL)),
        Key("mcp.allow_env", _parse_names,
            "runner environment variables MCP servers may reference as ${NAME} (comma-separated)",
            (ev.MCP_ALLOW_ENV,), default=()),
        Key("home", _parse_str, "stigmer's state directory", (ev.HOME,)),
    )
}

SECRET_KEYS = frozenset(k for k, spec in KEYS.items() if spec.secret)
