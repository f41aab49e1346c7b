"""Fuzz the daemon's HTTP API from its own OpenAPI spec with schemathesis: no 500s, no unhandled errors.

The app is the real one (``stigmer.daemon.api.create_app``) over a real SQLite store, called in
process through ASGI, with the bearer token supplied and a stand-in Temporal client (the API,
not Temporal, is under test). The daemon serves no ``/openapi.json`` (``openapi_url=None``), so
the spec is taken from ``app.openapi()``: the same routes, the same models. Every operation gets
schema-conforming and malformed requests; each answer must be below 500, and an error answer
must be the documented JSON shape (``detail`` and ``hint``), never a bare traceback.

Bounded (``FUZZ_EXAMPLES`` per operation, default 25) so the module stays under a minute; set it
higher for a longer run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from tests.support.daemon_api import FakeTemporal, fake_client, make_context, scripted_config
from tests.support.scripted_provider import PLUGIN, write_script

TOKEN = "fuzz-token-0123456789"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
V1 = "agentic.stigmer.ai/v1"


@pytest.fixture
def app(stigmer_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """One app per test: schemathesis ends an ASGI app's lifespan (which closes its store) after each test."""
    from stigmer.daemon.api import create_app

    monkeypatch.setenv("STIGMER_PLUGINS", PLUGIN)  # the registry finds the scripted model as a daemon would
    script = write_script(stigmer_home / "script.json", [{"content": "hi"}])
    cfg = scripted_config(stigmer_home, STIGMER_LLM_MODEL=script, ANTHROPIC_API_KEY="sk-ant-fuzz-secret-0000")
    return create_app(make_context(cfg, fake_client(FakeTemporal()), token=TOKEN))


@pytest.fixture
def api_schema(app: Any) -> Any:
    """The app's own spec, bound to the app (requests go through ASGI, in process), seeded with resources."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    _seed(schema)
    return schema


def _seed(schema: Any) -> None:
    """An agent, an MCP server and an execution exist, so fuzzed names sometimes hit real rows."""
    from starlette.testclient import TestClient

    agent = {"apiVersion": V1, "kind": "Agent", "metadata": {"name": "a"}, "spec": {"instructions": "Be brief."}}
    server = {"apiVersion": V1, "kind": "McpServer", "metadata": {"name": "s"},
              "spec": {"stdio": {"command": "python", "args": ["-V"]}}}
    # Not as a context manager: that would run (and end) the app's lifespan, closing its store.
    client = TestClient(schema.app, headers={"Authorization": f"Bearer {TOKEN}"})
    assert client.post("/v1/apply", json={"documents": [agent, server]}).status_code == 200
    assert client.post("/v1/executions", json={"agent": "a", "message": "hi"}).status_code == 201


def _operations(api_schema: Any) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


def _fuzz(operation: Any, mode: GenerationMode, examples: int, check: Any) -> list[str]:
    """Run ``check`` on ``examples`` generated requests of ``operation``; the problems found, as text."""
    problems: list[str] = []

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate])
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            check(case)
        except Exception as exc:  # collected and reported per operation below
            problems.append(f"{case.method} {case.formatted_path} body={str(case.body)[:120]!r}: "
                            f"{type(exc).__name__}: {str(exc)[:300]}")

    try:
        run()
    except Unsatisfiable:  # no malformed request exists for an operation without inputs (GET /v1/health)
        assert mode is GenerationMode.NEGATIVE
    return problems


def _with_token(case: Any) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}
    response = case.call(timeout=5)
    case.validate_response(response, checks=[not_a_server_error])
    _error_shape(response)


def _error_shape(response: Any) -> None:
    """A refusal is JSON saying what went wrong (``detail``), never a traceback or an empty body."""
    if response.status_code < 400:
        return
    assert "Traceback" not in response.text
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_makes_the_api_fail(api_schema: Any, mode: GenerationMode) -> None:
    problems = [p for op in _operations(api_schema) for p in _fuzz(op, mode, EXAMPLES, _with_token)]
    assert not problems, "\n".join(problems[:20])


def test_without_the_token_every_route_but_health_is_refused(api_schema: Any) -> None:
    def refused(case: Any) -> None:
        response = case.call(timeout=5)
        if case.path == "/v1/health":
            assert response.status_code == 200
            return
        if case.method.upper() == "OPTIONS" and case.path.startswith("/v1/codec/"):
            # A CORS preflight carries no credentials by design: refused (403, no CORS headers) unless it comes
            # from the managed Temporal web UI's origin, which these requests do not.
            assert response.status_code == 403, response.status_code
            assert "access-control-allow-origin" not in response.headers
            return
        assert response.status_code == 401, response.status_code
        assert "run/token" in response.json()["hint"]

    problems = [p for op in _operations(api_schema) for p in _fuzz(op, GenerationMode.POSITIVE, 3, refused)]
    assert not problems, "\n".join(problems[:20])


def test_the_spec_covers_every_route_of_the_architecture(api_schema: Any) -> None:
    paths = set(api_schema.raw_schema["paths"])
    assert {"/v1/health", "/v1/status", "/v1/config", "/v1/apply", "/v1/agents", "/v1/agents/{name}",
            "/v1/mcpservers", "/v1/mcpservers/{name}", "/v1/executions", "/v1/executions/{execution_id}",
            "/v1/executions/{execution_id}/cancel", "/v1/executions/{execution_id}/events",
            "/v1/executions/prune", "/v1/events"} <= paths


def test_an_unparseable_body_gets_the_documented_error_shape(api_schema: Any) -> None:
    """Every error answers ``{"detail", "hint"}`` (the module docstring of stigmer.daemon.api), this one too."""
    from starlette.testclient import TestClient

    client = TestClient(api_schema.app, headers={"Authorization": f"Bearer {TOKEN}",
                                                 "Content-Type": "application/json"})
    for path in ("/v1/apply", "/v1/executions", "/v1/events"):
        response = client.post(path, content=b"\x99 not json")
        assert response.status_code in (400, 422)
        body = response.json()
        assert body["detail"] and body.get("hint"), (path, body)


HOSTILE_BODIES = {
    "nested 100000 deep": b'{"documents":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "NaN and Infinity": b'{"events":[{"execution_id":"x","type":"token","data":{"a":NaN},"ts":Infinity}]}',
    "a 5000-digit number": b'{"agent":"a","message":"m","events":[],"documents":[],"ts":1' + b"0" * 5000 + b"}",
    "lone surrogates": b'{"agent":"a\\udc80","message":"\\ud800","documents":[{"kind":"\\udfff"}],"events":[]}',
    "not an object": b'"just a string"',
    "empty": b"",
}


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_hand_made_hostile_bodies_are_refused_cleanly(api_schema: Any, name: str) -> None:
    """Bodies a generator from the spec would not produce: parser limits, non-standard JSON, invalid text."""
    from starlette.testclient import TestClient

    client = TestClient(api_schema.app, raise_server_exceptions=False,
                        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    for path in ("/v1/apply", "/v1/executions", "/v1/events"):
        response = client.post(path, content=HOSTILE_BODIES[name])
        assert response.status_code < 500, (path, response.status_code, response.text[:200])
        _error_shape(response)
    assert client.get("/v1/health").status_code == 200  # and the daemon still answers


def test_a_terminal_event_with_invalid_text_still_ends_the_execution(api_schema: Any) -> None:
    """A runner's last event can carry text a model produced (JSON allows lone surrogates): it must be stored."""
    from starlette.testclient import TestClient

    client = TestClient(api_schema.app, raise_server_exceptions=False, headers={"Authorization": f"Bearer {TOKEN}"})
    execution = client.post("/v1/executions", json={"agent": "a", "message": "hi"}).json()["id"]
    event = {"execution_id": execution, "type": "failed", "data": {"error": "bad \udc80 path", "steps": 1}, "ts": 1.0}
    body = json.dumps({"events": [event]})  # ASCII-escaped: the surrogate travels as \\udc80, as JSON allows
    response = client.post("/v1/events", content=body.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text[:200]
    shown = client.get(f"/v1/executions/{execution}").json()
    assert shown["status"] == "failed" and shown["error"].startswith("bad ")
