"""A tiny OTLP/HTTP receiver on loopback: what an OpenTelemetry collector is to stigmer, reduced to a recorder.

It follows the published protocol (OTLP 1.x over HTTP: ``POST /v1/traces`` and ``POST /v1/metrics`` with
``application/x-protobuf`` bodies, optionally gzip'd, answered ``200`` with an empty response message) and
decodes the bodies with ``opentelemetry-proto``'s own messages. It is a test double, not a collector: it keeps
everything in memory and forwards nothing.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Span:
    """One received span, flattened: ids as hex, attribute values as Python values."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    service: str
    attributes: dict[str, Any] = field(default_factory=dict)
    status_code: int = 0


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class OtlpReceiver:
    """Records every OTLP/HTTP export posted to it; ``url`` is what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []  # (path, decompressed body): the raw bytes sent
        self.spans: list[Span] = []
        self.metric_names: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                known = receiver.record(self.path, body)
                self.send_response(200 if known else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def record(self, path: str, body: bytes) -> bool:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        with self._lock:
            self.bodies.append((path, body))
            if path == "/v1/traces":
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                self.spans += _spans(request)
                return True
            if path == "/v1/metrics":
                metrics = ExportMetricsServiceRequest()
                metrics.ParseFromString(body)
                self.metric_names |= {m.name for rm in metrics.resource_metrics for sm in rm.scope_metrics
                                      for m in sm.metrics}
                return True
        return False

    def named(self, name: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.name == name]

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _spans(request: Any) -> list[Span]:
    found = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                found.append(Span(name=s.name, trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                                  parent_id=s.parent_span_id.hex(), kind=s.kind,
                                  service=str(resource.get("service.name", "")),
                                  attributes={a.key: _value(a.value) for a in s.attributes},
                                  status_code=s.status.code))
    return found
