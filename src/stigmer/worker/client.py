"""``connect(cfg)``: a Temporal client for the configured address, namespace, TLS and API key.

Used by the runner and by the daemon (to start, query and cancel executions). The API key and
TLS material come from the configuration, which read them from the environment or config file;
they are never logged. Every client gets the claim-check codec (``stigmer.blobs.codec``) over the
configured blob store: a client without it could not read a payload a runner stored externally. When the
``OTEL_*`` variables ask for traces, every client also gets the SDK's tracing interceptor (``stigmer._telemetry``),
and so does every worker built on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError, RuntimeFailure


def _read(path: str | None, what: str, var: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror or exc}", hint=f"fix {var}") from None


def tls_config(cfg: Any) -> Any:
    """The SDK's TLS setting for ``cfg``: False, True (system roots) or a TLSConfig with the given files."""
    from temporalio.client import TLSConfig

    tls = cfg.temporal.tls
    files = (tls.client_cert, tls.client_key, tls.server_ca, tls.server_name)
    if not tls.enabled and not any(files):
        return bool(cfg.temporal.api_key)  # Temporal Cloud API keys need TLS
    if not any(files):
        return True
    return TLSConfig(
        server_root_ca_cert=_read(tls.server_ca, "temporal.tls.server_ca", "TEMPORAL_TLS_SERVER_CA_CERT_PATH"),
        client_cert=_read(tls.client_cert, "temporal.tls.client_cert", "TEMPORAL_TLS_CLIENT_CERT_PATH"),
        client_private_key=_read(tls.client_key, "temporal.tls.client_key", "TEMPORAL_TLS_CLIENT_KEY_PATH"),
        domain=tls.server_name)


async def connect(cfg: Any, *, identity: str | None = None) -> Any:
    """Connect to Temporal as ``cfg`` says; an unreachable server is a RuntimeFailure that says what to check."""
    from temporalio.client import Client

    from .._telemetry import client_interceptors
    from ..blobs.codec import data_converter

    t = cfg.temporal
    converter, interceptors = data_converter(cfg), client_interceptors()
    try:
        return await Client.connect(t.address, namespace=t.namespace, api_key=t.api_key or None, tls=tls_config(cfg),
                                    identity=identity, data_converter=converter, interceptors=interceptors)
    except ConfigError:
        raise
    except Exception as exc:
        hint = ("start the local stack with `stigmer local start`" if t.managed else
                "check --temporal-address / TEMPORAL_ADDRESS, the namespace, and TLS/API key settings")
        raise RuntimeFailure(f"cannot connect to Temporal at {t.address} (namespace {t.namespace!r}): "
                             f"{_reason(exc)}", hint=hint) from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
