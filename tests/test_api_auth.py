"""Tokens and roles: the runners' token posts events and nothing else.

The API is the real one on loopback with a stand-in Temporal client (roles do not need Temporal).
What a user would notice: a runner token (the one every runner holds) cannot apply, delete, start,
cancel, read the configuration or list anything: it gets 403 saying which role it has and what that
role may do; a wrong token still gets 401; the admin token still opens everything.
"""

from __future__ import annotations

from typing import Any

import httpx

from stigmer.config import Config
from stigmer.daemon.files import RUNNER_TOKEN_FILE, TOKEN_FILE
from tests.support.daemon_api import ApiServer, FakeTemporal

V1 = "agentic.stigmer.ai/v1"
AGENT = {"apiVersion": V1, "kind": "Agent", "metadata": {"name": "hello"}, "spec": {"instructions": "Be brief."}}

# Every route but /v1/health and POST /v1/events, with a body that would be accepted from the admin.
ADMIN_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/status", None), ("GET", "/v1/config", None), ("POST", "/v1/apply", {"documents": [AGENT]}),
    ("GET", "/v1/agents", None), ("GET", "/v1/agents/hello", None), ("DELETE", "/v1/agents/hello", None),
    ("GET", "/v1/mcpservers", None), ("DELETE", "/v1/mcpservers/x", None),
    ("POST", "/v1/executions", {"agent": "hello", "message": "hi", "model": "scripted:x.json"}),
    ("GET", "/v1/executions", None), ("GET", "/v1/executions/{id}", None),
    ("POST", "/v1/executions/{id}/cancel", None), ("GET", "/v1/executions/{id}/events", None),
    ("DELETE", "/v1/executions/{id}", None), ("POST", "/v1/executions/prune", {"older_than": "0"}),
]


def _execution(api: ApiServer) -> str:
    with httpx.Client(base_url=api.url, headers=api.headers()) as admin:
        admin.post("/v1/apply", json={"documents": [AGENT]}).raise_for_status()
        started = admin.post("/v1/executions", json={"agent": "hello", "message": "hi", "model": "scripted:x.json"})
        started.raise_for_status()
        return str(started.json()["id"])


def test_the_runner_token_is_its_own_owner_only_file(api: ApiServer, cfg: Config) -> None:
    run = cfg.path("run")
    runner_token = (run / RUNNER_TOKEN_FILE).read_text().strip()
    assert runner_token == api.runner_token and len(runner_token) >= 32
    assert runner_token != (run / TOKEN_FILE).read_text().strip()
    assert (run / RUNNER_TOKEN_FILE).stat().st_mode & 0o777 == 0o600


def test_the_runner_token_may_post_events_and_nothing_else(api: ApiServer, temporal: FakeTemporal) -> None:
    execution_id = _execution(api)
    with httpx.Client(base_url=api.url, headers=api.runner_headers(), timeout=10) as runner:
        assert runner.get("/v1/health").status_code == 200
        posted = runner.post("/v1/events", json={"events": [
            {"execution_id": execution_id, "type": "token", "data": {"text": "hi"}}]})
        assert posted.json() == {"stored": 1, "verifying": 0, "ignored": 0}
        for method, path, body in ADMIN_ROUTES:
            response = runner.request(method, path.replace("{id}", execution_id), json=body)
            assert response.status_code == 403, (method, path, response.status_code, response.text)
            detail = response.json()["detail"]
            assert "runner token" in detail and "may only post execution events" in detail, detail
            assert "run/token" in response.json()["hint"]
            assert api.runner_token not in response.text and api.token not in response.text
    # nothing the runner asked for happened: one execution, still there, never cancelled
    assert len(temporal.started) == 1 and temporal.signals == []
    with httpx.Client(base_url=api.url, headers=api.headers()) as admin:
        assert admin.get(f"/v1/executions/{execution_id}").json()["status"] == "running"
        assert [a["name"] for a in admin.get("/v1/agents").json()["items"]] == ["hello"]


def test_a_wrong_token_is_still_401_and_the_admin_still_opens_every_route(api: ApiServer) -> None:
    execution_id = _execution(api)
    near_misses = [api.runner_token[:-1], api.runner_token + "x", api.token[:-1], "Bearer " + api.runner_token]
    with httpx.Client(base_url=api.url, timeout=10) as client:
        for token in near_misses:
            response = client.post("/v1/events", json={"events": []}, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, token
        response = client.post("/v1/events", json={"events": []}, headers={"Authorization": api.runner_token})
        assert response.status_code == 401  # no "Bearer" scheme
        for method, path, body in ADMIN_ROUTES:
            if method == "DELETE" and "executions" in path:
                continue  # deleting is checked on its own (it needs an ended execution)
            response = client.request(method, path.replace("{id}", execution_id), json=body, headers=api.headers(),
                                      params={"follow": "false"} if path.endswith("/events") else None)
            assert response.status_code < 400 or response.status_code == 404, (method, path, response.text)


def test_the_admin_token_posts_terminal_events_as_they_are(api: ApiServer) -> None:
    """The admin is the person who owns the stack: what it posts is not second-guessed (only runners' is)."""
    execution_id = _execution(api)
    with httpx.Client(base_url=api.url, headers=api.headers()) as admin:
        answer = admin.post("/v1/events", json={"events": [
            {"execution_id": execution_id, "type": "completed", "data": {"output": "ok", "steps": 1}}]}).json()
        assert answer == {"stored": 1, "verifying": 0, "ignored": 0}
        assert admin.get(f"/v1/executions/{execution_id}").json()["status"] == "completed"
