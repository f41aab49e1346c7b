"""OpenTelemetry traces over OTLP, and the Temporal SDK's metrics on runners, only when asked for.

Traces: when the standard variables name an OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) and neither ``OTEL_SDK_DISABLED=true`` nor ``OTEL_TRACES_EXPORTER=none``
says otherwise, :func:`setup_tracing` installs a tracer provider exporting over OTLP/HTTP (protobuf) in batches,
instruments httpx (model providers, MCP over HTTP), and :func:`client_interceptors` hands every Temporal client
the SDK's own ``TracingInterceptor``, so the API's workflow start, the workflow on a runner and its activities
join one trace. The SDK reads the other ``OTEL_*`` variables itself (headers, sampler, batch delays, resource
attributes, ``OTEL_SERVICE_NAME``). With no such variable nothing here imports OpenTelemetry: zero cost.

What never reaches a span: a key or token (no header is recorded: the API's header capture is forced to redact
anything that looks like a credential, and an outgoing request's URL is recorded without its query string or
user info), a prompt or reply, a tool's arguments or output. Spans carry names, ids and counts.

Workflow code never calls this module: the interceptor makes the workflow's spans outside the sandbox, and
replays make none. The state below is per process (like OpenTelemetry's own global provider) and is written
only by process entry points and client creation, never by workflow code.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("stigmer.telemetry")

TRACES_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
METRICS_ENDPOINT_VAR = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
INSTALL_HINT = "pip install 'stigmer[otel]'"
TRACER_NAME = "stigmer"
# Header names the API never records, whatever OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_* asks for (regexes).
REDACTED_HEADERS = [".*authorization.*", ".*token.*", ".*key.*", ".*secret.*", ".*cookie.*", ".*password.*"]
# Server spans not worth a trace: load balancers' probes and Prometheus' scrapes.
UNTRACED_ROUTES = "/v1/health$,/metrics$"


class _State:
    """This process's tracing: whether setup ran, and the provider when tracing is on."""

    tried = False
    provider: Any = None


_STATE = _State()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def traces_wanted(env: Mapping[str, str]) -> bool:
    """True when ``env`` asks for traces: an OTLP endpoint is set, the SDK is not disabled, the exporter is otlp."""
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return False
    exporters = {e.strip().lower() for e in (env.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")}
    if "otlp" not in exporters:
        return False
    return any((env.get(name) or "").strip() for name in TRACES_ENDPOINT_VARS)


def enabled() -> bool:
    """True when this process exports traces (after :func:`setup_tracing` turned them on)."""
    return _STATE.provider is not None


def setup_tracing(service: str = "stigmer") -> bool:
    """Export this process's spans over OTLP when the environment asks for it; the first call decides.

    Args:
        service: ``service.name`` unless ``OTEL_SERVICE_NAME`` (or ``OTEL_RESOURCE_ATTRIBUTES``) names one.

    Returns:
        True when tracing is on. A missing OpenTelemetry install is a warning naming the extra, not a failure:
        the runner or API works on, untraced.
    """
    if _STATE.tried:
        return enabled()
    _STATE.tried = True
    if not traces_wanted(os.environ):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log.warning("OTEL_* variables ask for traces, but OpenTelemetry is not installed (%s): %s",
                    exc.name, INSTALL_HINT)
        return False
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _STATE.provider = provider
    _instrument_httpx(provider)
    log.info("tracing: spans go over OTLP/HTTP to %s", _where())
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if (protocol or "").strip().lower() == "grpc":
        log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=grpc: stigmer sends traces over http/protobuf only; point the "
                    "endpoint at the collector's OTLP/HTTP port (4318 by default)")
    return True


def _where() -> str:
    """The traces endpoint as scheme://host:port for a log line (a URL may carry credentials)."""
    url = next(v for v in (os.environ.get(n, "").strip() for n in TRACES_ENDPOINT_VARS) if v)
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.port else f"{parts.scheme}://{parts.hostname}"


def _instrument_httpx(provider: Any) -> None:
    """Trace every httpx request (model providers, MCP over HTTP); the recorded URL drops query and user info."""
    try:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    except ImportError as exc:
        log.warning("tracing model calls' HTTP requests needs %s (%s)", INSTALL_HINT, exc.name)
        return

    async def redact_async(span: Any, request: Any) -> None:
        redact_url(span, request)

    HTTPXClientInstrumentor().instrument(tracer_provider=provider, request_hook=redact_url,
                                         async_request_hook=redact_async)


def redact_url(span: Any, request: Any) -> None:
    """An httpx span's URL without query string or user info: a URL may hold a key (``?key=``, ``user:pass@``)."""
    if not span.is_recording():
        return
    raw = request.url  # an httpx.URL, or the transport's (scheme, host, port, target) as bytes
    if isinstance(raw, tuple):
        scheme, host, port, target = raw
        raw = f"{scheme.decode()}://{host.decode()}{f':{port}' if port else ''}{target.decode()}"
    url = urlsplit(str(raw))
    netloc = f"{url.hostname or ''}{f':{url.port}' if url.port else ''}"
    clean = f"{url.scheme}://{netloc}{url.path}"
    for key in ("url.full", "http.url"):
        if key in (getattr(span, "attributes", None) or {}):
            span.set_attribute(key, clean)


def client_interceptors() -> list[Any]:
    """The interceptors every Temporal client gets: the SDK's tracing one when tracing is on, else none.

    Called by :func:`stigmer.worker.client.connect`; sets tracing up on first use, so whichever process connects
    first (an API, a runner) exports its spans. A worker built on the client gets the interceptor too.
    """
    if not setup_tracing():
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def instrument_app(app: Any) -> None:
    """Trace the API's requests (one server span per request; health checks and scrapes left out)."""
    if not setup_tracing("stigmer-api"):
        return
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError as exc:
        log.warning("tracing API requests needs %s (%s)", INSTALL_HINT, exc.name)
        return
    FastAPIInstrumentor.instrument_app(app, tracer_provider=_STATE.provider, excluded_urls=UNTRACED_ROUTES,
                                       exclude_spans=["receive", "send"],
                                       http_capture_headers_sanitize_fields=REDACTED_HEADERS)


@contextlib.contextmanager
def span(name: str, attributes: dict[str, Any], *, client: bool = False) -> Iterator[Any]:
    """A span named ``name`` around the block, or nothing at all when tracing is off (yields None then).

    A failure sets the span's status to the error's type only (an ``ApplicationError``'s ``type``, else the
    class): its message may quote what a provider or a tool was sent.
    """
    if _STATE.provider is None:
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer = trace.get_tracer(TRACER_NAME)
    kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
    with tracer.start_as_current_span(name, kind=kind, attributes=_clean(attributes), record_exception=False,
                                      set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as exc:
            kind_of = getattr(exc, "type", None) or type(exc).__name__  # an ApplicationError's own type first
            current.set_attribute("error.type", str(kind_of))
            current.set_status(Status(StatusCode.ERROR, str(kind_of)))
            raise


def set_attributes(current: Any, attributes: dict[str, Any]) -> None:
    """Add attributes to a span from :func:`span` (None when tracing is off: nothing to do)."""
    if current is not None:
        current.set_attributes(_clean(attributes))


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry takes str, bool, int and float values; None means "not known" and is left out."""
    return {k: v for k, v in attributes.items() if isinstance(v, (str, bool, int, float))}


def shutdown() -> None:
    """Send the spans still waiting in the batch; before a process leaves through ``os._exit``."""
    if _STATE.provider is not None:
        with contextlib.suppress(Exception):
            _STATE.provider.shutdown()


def sdk_metrics(address: str | None, env: Mapping[str, str]) -> Any:
    """The Temporal Runtime's metrics: a Prometheus endpoint at ``address``, else OTLP, else None.

    OTLP when ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` is set (the full URL, ``.../v1/metrics`` over HTTP; gRPC
    when ``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`` or ``OTEL_EXPORTER_OTLP_PROTOCOL`` says ``grpc``), every
    ``OTEL_METRIC_EXPORT_INTERVAL`` ms (default 60000). The SDK's runtime takes one metrics exporter, so an
    address wins over OTLP (with a warning). ``OTEL_SDK_DISABLED=true`` turns OTLP off, not the address.
    """
    from datetime import timedelta

    from temporalio.runtime import OpenTelemetryConfig, PrometheusConfig

    otlp = (env.get(METRICS_ENDPOINT_VAR) or "").strip()
    if _truthy(env.get("OTEL_SDK_DISABLED")) or (env.get("OTEL_METRICS_EXPORTER") or "").strip().lower() == "none":
        otlp = ""
    if address:
        if otlp:
            log.warning("runner.metrics_address and %s are both set: serving Prometheus metrics on %s only "
                        "(the SDK exports metrics one way)", METRICS_ENDPOINT_VAR, address)
        return PrometheusConfig(bind_address=address)
    if not otlp:
        return None
    protocol = (env.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "")
    interval = int(env.get("OTEL_METRIC_EXPORT_INTERVAL") or 60000)
    return OpenTelemetryConfig(url=otlp, headers=_headers(env), http=protocol.strip().lower() != "grpc",
                               metric_periodicity=timedelta(milliseconds=max(interval, 100)))


def _headers(env: Mapping[str, str]) -> dict[str, str] | None:
    """``OTEL_EXPORTER_OTLP_METRICS_HEADERS`` (else ``..._HEADERS``): ``k=v,k2=v2``, values URL-encoded (the spec)."""
    from urllib.parse import unquote

    raw = env.get("OTEL_EXPORTER_OTLP_METRICS_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS") or ""
    pairs = [p.split("=", 1) for p in raw.split(",") if "=" in p]
    return {unquote(k.strip()): unquote(v.strip()) for k, v in pairs} or None
