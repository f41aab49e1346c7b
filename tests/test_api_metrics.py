"""``GET /metrics`` (issue 12): requests by route template and status, executions by status, event lag, in
Prometheus' text format, for an admin or viewer token only, and holding no token or execution data.

The API is the real one on loopback with a stand-in Temporal client; the scrape is parsed with prometheus_client's
own parser, as a Prometheus server would read it.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon_api import ApiServer

AGENT = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "hello"},
         "spec": {"instructions": "Be brief."}}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_executions_and_event_lag_are_counted(api: ApiServer, http: httpx.Client) -> None:
    http.post("/v1/apply", json={"documents": [AGENT]}).raise_for_status()
    for _ in range(3):
        assert http.get("/v1/agents").status_code == 200
    assert http.get("/v1/agents/nobody").status_code == 404
    assert http.get("/v1/no/such/route").status_code == 404
    execution = http.post("/v1/executions", json={"agent": "hello", "message": "hi", "model": "scripted:x.json"})
    execution_id = execution.json()["id"]
    assert http.get(f"/v1/executions/{execution_id}").status_code == 200
    made = time.time() - 0.2  # as if the runner made these 200 ms before posting them
    with httpx.Client(base_url=api.url, headers=api.runner_headers(), timeout=10) as runner:
        runner.post("/v1/events", json={"events": [
            {"execution_id": execution_id, "type": "token", "data": {"text": "h"}, "ts": made, "id": "a"},
            {"execution_id": execution_id, "type": "token", "data": {"text": "i"}, "ts": made, "id": "b"}]})
    scraped = http.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    samples = _samples(scraped.text)
    requests = "stigmer_api_requests_total"
    assert _value(samples, requests, method="GET", route="/v1/agents", status="200") == 3
    assert _value(samples, requests, method="GET", route="/v1/agents/{name}", status="404") == 1
    assert _value(samples, requests, method="GET", route="unmatched", status="404") == 1
    assert _value(samples, requests, method="GET", route="/v1/executions/{execution_id}", status="200") == 1
    assert _value(samples, requests, method="POST", route="/v1/events", status="200") == 1
    assert not any(execution_id in str(key) for key in samples)  # templates, never ids
    assert _value(samples, "stigmer_executions", status="running") + _value(
        samples, "stigmer_executions", status="pending") == 1
    assert _value(samples, "stigmer_executions", status="completed") == 0
    assert _value(samples, "stigmer_event_lag_seconds_count") == 2
    assert 0.4 <= _value(samples, "stigmer_event_lag_seconds_sum") < 60
    assert _value(samples, "stigmer_event_lag_seconds_bucket", le="0.1") == 0  # each waited at least 0.2 s
    assert api.token not in scraped.text and api.runner_token not in scraped.text and "hello" not in scraped.text


def test_only_admin_and_viewer_tokens_may_scrape(api: ApiServer, http: httpx.Client) -> None:
    viewer = http.post("/v1/tokens", json={"name": "prometheus", "role": "viewer"}).json()["token"]
    with httpx.Client(base_url=api.url, timeout=10) as client:
        assert client.get("/metrics", headers={"Authorization": f"Bearer {viewer}"}).status_code == 200
        assert client.get("/metrics", headers={"Authorization": f"Bearer {api.runner_token}"}).status_code == 403
        assert client.get("/metrics").status_code == 401
