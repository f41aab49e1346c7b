"""``GET /v1/usage``: the tokens and cost of the executions that ended, summed, by agent, model or session."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.backends import both_backends  # noqa: F401  (each test on SQLite and PostgreSQL)
from tests.support.daemon_api import ApiServer

V1 = "agentic.stigmer.ai/v1"


@pytest.fixture(autouse=True)
def agents(http: httpx.Client) -> None:
    docs = [{"apiVersion": V1, "kind": "Agent", "metadata": {"name": n}, "spec": {"instructions": "Be brief."}}
            for n in ("hello", "other")]
    assert http.post("/v1/apply", json={"documents": docs}).status_code == 200


def usage(inp: int, out: int, cost: float | None = 0.0) -> dict[str, Any]:
    return {"input_tokens": inp, "output_tokens": out, "cached_tokens": 0, "cost_usd": cost, "estimated": False}


def ended(http: httpx.Client, body: dict[str, Any], spent: dict[str, Any] | None, path: str = "/v1/executions") -> str:
    response = http.post(path, json=body)
    assert response.status_code == 201, response.text
    execution_id = str(response.json()["id"])
    data = {"output": "ok", "steps": 1, **({"usage": spent} if spent else {})}
    http.post("/v1/events", json={"events": [{"execution_id": execution_id, "type": "completed", "data": data}]})
    return execution_id


def test_usage_sums_what_ended_executions_reported_grouped_as_asked(api: ApiServer, http: httpx.Client) -> None:
    ended(http, {"agent": "hello", "message": "a", "model": "scripted:one.json"}, usage(100, 10, 0.5))
    ended(http, {"agent": "other", "message": "b", "model": "scripted:two.json"}, usage(40, 4, None))
    ended(http, {"agent": "other", "message": "c", "model": "scripted:two.json"}, None)  # reported nothing
    session = http.post("/v1/sessions", json={"agent": "hello", "name": "chat", "model": "scripted:one.json"}).json()
    ended(http, {"message": "d"}, usage(7, 3, 0.25), path="/v1/sessions/chat/messages")
    total = http.get("/v1/usage").json()["total"]
    assert total == {"executions": 3, "input_tokens": 147, "output_tokens": 17, "cached_tokens": 0,
                     "cost_usd": 0.75, "unpriced": True, "estimated": False}
    by_agent = {i["key"]: (i["input_tokens"], i["cost_usd"]) for i in http.get("/v1/usage?by=agent").json()["items"]}
    assert by_agent == {"hello": (107, 0.75), "other": (40, 0.0)}
    by_model = {i["key"]: i["executions"] for i in http.get("/v1/usage?by=model").json()["items"]}
    assert by_model == {"scripted:one.json": 2, "scripted:two.json": 1}
    by_session = http.get("/v1/usage", params={"by": "session"}).json()["items"]
    assert [(i["key"], i.get("name"), i["input_tokens"]) for i in by_session] == [
        (None, None, 140), (session["id"], "chat", 7)]


def test_since_counts_only_executions_that_ended_in_that_window(api: ApiServer, http: httpx.Client) -> None:
    old = ended(http, {"agent": "hello", "message": "a", "model": "scripted:x.json"}, usage(100, 10))
    ended(http, {"agent": "hello", "message": "b", "model": "scripted:x.json"}, usage(1, 1))
    with api.state.store._tx() as conn:  # it ended two days ago
        conn.execute("UPDATE executions SET finished_at = ? WHERE id = ?", (time.time() - 2 * 86400, old))
    assert http.get("/v1/usage", params={"since": 86400}).json()["total"]["input_tokens"] == 1
    assert http.get("/v1/usage").json()["total"]["input_tokens"] == 101


def test_a_bad_usage_query_names_the_parameter(http: httpx.Client) -> None:
    for params, loc in (({"by": "colour"}, "query.by"), ({"since": -1}, "query.since")):
        response = http.get("/v1/usage", params=params)
        assert response.status_code == 422 and response.json()["errors"][0]["loc"] == loc
