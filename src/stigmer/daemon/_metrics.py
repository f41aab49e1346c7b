"""``GET /metrics``: the API's numbers in Prometheus' text format (admin or viewer token).

- ``stigmer_api_requests_total{method, route, status}`` and ``stigmer_api_request_seconds{method, route}``: every
  request, labelled by its route's template (``/v1/executions/{execution_id}``, never an id, so the series stay
  few; ``unmatched`` for a path no route serves). An event stream counts for as long as it stayed open.
- ``stigmer_executions{status}``: executions by status, read from the store when scraped.
- ``stigmer_event_lag_seconds``: from a runner making an event (its ``ts``) to the API storing it; on loopback this
  is the event pipeline's delay (runner batching, the POST, the store), across machines it includes clock skew.

Each app has its own registry (tests run several in one process). Nothing here holds a token or any data an
execution carries: labels are methods, route templates, status codes and execution statuses only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ..store import STATUSES

UNMATCHED = "unmatched"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The registry of one API and its instruments."""

    def __init__(self, store: Any) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter("stigmer_api_requests", "API requests, by method, route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("stigmer_api_request_seconds", "API request duration (an event stream: how long "
                                 "it stayed open)", ["method", "route"], buckets=_LATENCY_BUCKETS,
                                 registry=self.registry)
        self.event_lag = Histogram("stigmer_event_lag_seconds", "from a runner making an event to the API storing it",
                                   buckets=_LAG_BUCKETS, registry=self.registry)
        self.registry.register(_Executions(store))

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def stored(self, events: list[dict[str, Any]]) -> None:
        now = time.time()
        for event in events:
            self.event_lag.observe(max(0.0, now - float(event.get("ts") or now)))


class _Executions:
    """Executions by status, counted when scraped."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("stigmer_executions", "executions by status", labels=["status"])
        counts = self.store.execution_counts()
        for status in STATUSES:
            family.add_metric([status], counts.get(status, 0))
        yield family


def route_of(scope: dict[str, Any]) -> str:
    """The template of the route that served ``scope``: its path with each path parameter's value put back as
    ``{name}``; ``unmatched`` when no route did."""
    if scope.get("endpoint") is None:
        return UNMATCHED
    names = {str(value): name for name, value in (scope.get("path_params") or {}).items()}
    return "/".join(f"{{{names[part]}}}" if part in names else part for part in str(scope.get("path", "")).split("/"))


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request (see the module docstring)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, sending)
        finally:
            route, method = route_of(scope), str(scope.get("method", ""))
            self.metrics.requests.labels(method, route, str(status[0])).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
