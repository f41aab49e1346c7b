"""Sessions through the API, over a stand-in Temporal (the session workflow itself is the worker's tests' business).

What a client notices: a session is created with its workflow started once, a message becomes the session's next
turn (an execution to stream) sent as the ``send_message`` Update with the execution id as its id, a refusal is a
409 with the workflow's reason and leaves nothing behind, a run can name or continue a session, a turn's end is
confirmed with the session's ``turn`` query, and deleting a session closes its workflow and removes its turns.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from stigmer.worker.params import (
    CANCEL_TURN,
    CLOSE,
    SEND_MESSAGE,
    SESSION_WORKFLOW_NAME,
    SessionInput,
    TurnRequest,
)
from tests.support.backends import both_backends  # noqa: F401  (each test on SQLite and PostgreSQL)
from tests.support.daemon_api import ApiServer, FakeTemporal

V1 = "agentic.stigmer.ai/v1"
MODEL = "scripted:x.json"


def agent(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": V1, "kind": "Agent", "metadata": {"name": name},
            "spec": {"instructions": "Answer briefly.", **spec}}


@pytest.fixture
def hello(http: httpx.Client) -> None:
    assert http.post("/v1/apply", json={"documents": [agent("hello"), agent("other")]}).status_code == 200


def create(http: httpx.Client, name: str | None = "chat", agent_name: str = "hello") -> dict[str, Any]:
    response = http.post("/v1/sessions", json={"agent": agent_name, "name": name, "model": MODEL})
    assert response.status_code == 201, response.text
    return dict(response.json())


def say(http: httpx.Client, ref: str, message: str, **headers: str) -> httpx.Response:
    return http.post(f"/v1/sessions/{ref}/messages", json={"message": message}, headers=headers)


def post_events(http: httpx.Client, execution_id: str, *events: tuple[str, dict[str, Any]],
                headers: dict[str, str] | None = None) -> dict[str, Any]:
    body = {"events": [{"execution_id": execution_id, "type": t, "data": d} for t, d in events]}
    response = http.post("/v1/events", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_for(check: Any, what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.usefixtures("hello")
def test_creating_a_session_starts_its_workflow_once_and_a_name_is_unique(
        http: httpx.Client, temporal: FakeTemporal) -> None:
    session = create(http)
    assert session["id"].startswith("s-") and len(session["id"]) == 14
    assert (session["name"], session["agent"], session["status"], session["turn_count"]) == ("chat", "hello", "open", 0)
    [started] = temporal.started
    assert (started["workflow"], started["id"]) == (SESSION_WORKFLOW_NAME, f"stigmer-session-{session['id']}")
    params = started["input"]
    assert isinstance(params, SessionInput)
    assert (params.session_id, params.agent_name, params.model_name, params.model_source) == (
        session["id"], "hello", MODEL, "run")
    taken = http.post("/v1/sessions", json={"agent": "hello", "name": "chat"})
    assert taken.status_code == 409 and "already exists" in taken.json()["detail"]
    assert len(temporal.started) == 1
    assert http.get("/v1/sessions/chat").json()["id"] == session["id"]
    assert [s["id"] for s in http.get("/v1/sessions", params={"agent": "hello"}).json()["items"]] == [session["id"]]
    assert http.get("/v1/sessions", params={"agent": "other"}).json()["items"] == []


@pytest.mark.usefixtures("hello")
def test_bad_session_requests_name_the_field_or_the_unknown_thing(http: httpx.Client, temporal: FakeTemporal) -> None:
    bad = http.post("/v1/sessions", json={"agent": "hello", "name": "no spaces"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "body.name"
    unknown = http.post("/v1/sessions", json={"agent": "helo"})
    assert unknown.status_code == 404 and "did you mean 'hello'" in unknown.json()["detail"]
    missing = http.get("/v1/sessions/chta")
    assert missing.status_code == 404 and missing.json()["hint"]
    create(http)
    empty = http.post("/v1/sessions/chat/messages", json={"message": ""})
    assert empty.status_code == 422 and "body.message" in empty.json()["detail"]
    assert temporal.updates == []


@pytest.mark.usefixtures("hello")
def test_a_message_is_the_next_turn_sent_as_an_update_whose_id_is_the_execution_id(
        http: httpx.Client, temporal: FakeTemporal) -> None:
    session = create(http)
    first = say(http, "chat", "hi")
    assert first.status_code == 201, first.text
    second = say(http, session["id"], "and then?")
    one, two = first.json(), second.json()
    assert (one["session_id"], one["turn"], one["queued"], one["status"]) == (session["id"], 1, 0, "pending")
    assert (two["turn"], two["queued"]) == (2, 1)  # sent while the first runs: queued behind it
    assert [(u["workflow_id"], u["name"], u["id"]) for u in temporal.updates] == [
        (f"stigmer-session-{session['id']}", SEND_MESSAGE, one["id"]),
        (f"stigmer-session-{session['id']}", SEND_MESSAGE, two["id"])]
    assert temporal.updates[0]["arg"] == TurnRequest(execution_id=one["id"], message="hi")
    assert len(temporal.started) == 1  # the session's workflow, started once
    assert http.get("/v1/sessions/chat").json()["turn_count"] == 2


@pytest.mark.usefixtures("hello")
def test_a_repeated_message_with_its_idempotency_key_is_the_same_turn(
        http: httpx.Client, temporal: FakeTemporal) -> None:
    create(http)
    first = say(http, "chat", "hi", **{"Idempotency-Key": "k1"})
    again = say(http, "chat", "hi", **{"Idempotency-Key": "k1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert len(temporal.updates) == 1
    other = say(http, "chat", "something else", **{"Idempotency-Key": "k1"})
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]


@pytest.mark.usefixtures("hello")
def test_a_refused_message_is_a_409_with_the_workflows_reason_and_leaves_no_turn(
        http: httpx.Client, temporal: FakeTemporal) -> None:
    create(http)
    temporal.reject = "8 turns are already waiting in this session: send this one when one has run"
    refused = say(http, "chat", "hi")
    assert refused.status_code == 409
    assert "8 turns are already waiting" in refused.json()["detail"] and refused.json()["hint"]
    temporal.reject = None
    accepted = say(http, "chat", "hi again").json()
    assert accepted["turn"] == 1  # the refused one took no turn number
    assert [t["id"] for t in http.get("/v1/sessions/chat").json()["turns"]] == [accepted["id"]]


@pytest.mark.usefixtures("hello")
def test_a_run_names_a_session_created_on_first_use_or_continues_the_latest(
        http: httpx.Client, temporal: FakeTemporal) -> None:
    first = http.post("/v1/executions", json={"agent": "hello", "message": "hi", "session": "work", "model": MODEL})
    assert first.status_code == 201, first.text
    session = http.get("/v1/sessions/work").json()
    assert (first.json()["session_id"], first.json()["turn"]) == (session["id"], 1)
    second = http.post("/v1/executions", json={"agent": "hello", "message": "more", "session": "work"})
    assert (second.json()["session_id"], second.json()["turn"]) == (session["id"], 2)
    continued = http.post("/v1/executions", json={"agent": "hello", "message": "again", "continue": True})
    assert (continued.json()["session_id"], continued.json()["turn"]) == (session["id"], 3)
    assert [s["workflow"] for s in temporal.started] == [SESSION_WORKFLOW_NAME]  # no plain run was started
    wrong_agent = http.post("/v1/executions", json={"agent": "other", "message": "hi", "session": "work"})
    assert wrong_agent.status_code == 409 and "'hello'" in wrong_agent.json()["detail"]
    nothing = http.post("/v1/executions", json={"agent": "other", "message": "hi", "continue": True})
    assert nothing.status_code == 404 and "--session" in nothing.json()["hint"]
    both = http.post("/v1/executions", json={"agent": "hello", "message": "hi", "continue": True, "session": "work"})
    assert both.status_code == 422 and "either session or continue" in both.json()["detail"]


@pytest.mark.usefixtures("hello")
def test_a_turns_end_is_confirmed_with_the_session_workflows_turn_query(
        api: ApiServer, http: httpx.Client, temporal: FakeTemporal) -> None:
    create(http)
    turn = say(http, "chat", "hi").json()
    runner = api.runner_headers()
    usage = {"input_tokens": 12, "output_tokens": 3, "cached_tokens": 0, "cost_usd": 0.0, "estimated": False}
    # the runner says completed; Temporal's turn query agrees (and reports the usage): stored
    temporal.turns[turn["id"]] = {"status": "completed", "output": "Hello", "turn": 1, "usage": usage}
    posted = post_events(http, turn["id"], ("completed", {"output": "Hello", "steps": 1,
                                                          "usage": {**usage, "input_tokens": 1}}), headers=runner)
    assert posted["verifying"] == 1
    done = wait_for(lambda: (e := http.get(f"/v1/executions/{turn['id']}").json())["status"] == "completed" and e,
                    "the confirmed completed event")
    assert done["output"] == "Hello" and done["usage"]["input_tokens"] == 12  # Temporal's usage, not the post's
    assert temporal.signals == []  # the session stays open
    session = http.get("/v1/sessions/chat").json()
    assert session["usage"]["input_tokens"] == 12 and session["status"] == "open"


@pytest.mark.usefixtures("hello")
def test_a_forged_end_of_a_turn_loses_to_what_the_session_says(
        api: ApiServer, http: httpx.Client, temporal: FakeTemporal) -> None:
    create(http)
    turn = say(http, "chat", "hi").json()
    temporal.turns[turn["id"]] = {"status": "failed", "error": "the model failed", "turn": 1}
    post_events(http, turn["id"], ("completed", {"output": "Lies.", "steps": 1}), headers=api.runner_headers())
    ended = wait_for(lambda: (e := http.get(f"/v1/executions/{turn['id']}").json())["status"] == "failed" and e,
                     "Temporal's outcome")
    assert ended["error"] == "the model failed" and ended["output"] is None


@pytest.mark.usefixtures("hello")
def test_reconciliation_ends_a_turn_the_session_finished_without_its_event(
        http: httpx.Client, temporal: FakeTemporal, monkeypatch: pytest.MonkeyPatch) -> None:
    from stigmer.daemon import _reconcile

    create(http)
    turn = say(http, "chat", "hi").json()
    temporal.turns[turn["id"]] = {"status": "running", "step": 1}
    assert http.get(f"/v1/executions/{turn['id']}").json()["status"] == "running"  # the session runs it
    temporal.turns[turn["id"]] = {"status": "completed", "output": "Hi!", "turn": 1}
    monkeypatch.setattr(_reconcile, "GRACE_S", 0.0)  # the runner's own event is not coming
    got = http.get(f"/v1/executions/{turn['id']}").json()
    assert (got["status"], got["output"]) == ("completed", "Hi!")
    events = http.get(f"/v1/executions/{turn['id']}/events", params={"follow": "false"}).text
    assert '"reconciled":true' in events.replace(" ", "")


@pytest.mark.usefixtures("hello")
def test_cancelling_a_turn_signals_the_session_to_cancel_that_turn(
        http: httpx.Client, temporal: FakeTemporal) -> None:
    session = create(http)
    turn = say(http, "chat", "hi").json()
    assert http.post(f"/v1/executions/{turn['id']}/cancel").json()["cancel_requested"] is True
    assert temporal.signal_args == [(f"stigmer-session-{session['id']}", CANCEL_TURN, (turn["id"],))]


@pytest.mark.usefixtures("hello")
def test_get_shows_each_turn_with_its_tool_calls_and_usage(http: httpx.Client) -> None:
    create(http)
    turn = say(http, "chat", "list files").json()
    usage = {"input_tokens": 7, "output_tokens": 2, "cached_tokens": 1, "cost_usd": None, "estimated": True}
    post_events(http, turn["id"],
                ("tool_started", {"call_id": "c1", "step": 1, "name": "list_files", "args": {"path": "."}}),
                ("tool_finished", {"call_id": "c1", "step": 1, "name": "list_files", "result": "a.txt",
                                   "is_error": False}),
                ("completed", {"output": "a.txt", "steps": 2, "usage": usage}))  # the admin's: stored as is
    session = http.get("/v1/sessions/chat").json()
    [shown] = session["turns"]
    assert (shown["message"], shown["output"], shown["usage"]) == ("list files", "a.txt", usage)
    assert shown["tool_calls"] == [{"call_id": "c1", "step": 1, "name": "list_files", "args": {"path": "."},
                                    "is_error": False, "result": "a.txt"}]
    assert session["usage"] == {"input_tokens": 7, "output_tokens": 2, "cached_tokens": 1, "cost_usd": 0.0,
                                "estimated": True, "unpriced": True}


@pytest.mark.usefixtures("hello")
def test_deleting_a_session_closes_its_workflow_and_removes_its_turns(
        http: httpx.Client, temporal: FakeTemporal) -> None:
    session = create(http)
    done = say(http, "chat", "hi").json()
    post_events(http, done["id"], ("completed", {"output": "ok", "steps": 1}))
    live = say(http, "chat", "and?").json()
    refused = http.delete(f"/v1/executions/{done['id']}")
    assert refused.status_code == 409 and "session delete" in refused.json()["hint"]
    with http.stream("GET", f"/v1/executions/{live['id']}/events") as stream:
        deleted = http.delete("/v1/sessions/chat")
        assert deleted.status_code == 200, deleted.text
        tail = stream.read().decode()  # the live turn's stream ends: the session was deleted
    assert '"failed"' in tail and "the session was deleted" in tail
    assert deleted.json() == {"deleted": {"id": session["id"], "name": "chat", "turns": 2}, "workflow": "closed"}
    assert (f"stigmer-session-{session['id']}", CLOSE) in temporal.signals
    assert http.get("/v1/sessions/chat").status_code == 404
    assert http.get(f"/v1/executions/{done['id']}").status_code == 404
    create(http)  # the name is free again


@pytest.mark.usefixtures("hello")
def test_a_session_that_does_not_close_is_terminated_when_deleted(
        http: httpx.Client, temporal: FakeTemporal, monkeypatch: pytest.MonkeyPatch) -> None:
    from stigmer.daemon import _sessions

    session = create(http)
    temporal.stuck = True  # no runner to run the close
    monkeypatch.setattr(_sessions, "CLOSE_WAIT_S", 0.1)
    assert http.delete(f"/v1/sessions/{session['id']}").json()["workflow"] == "terminated"
    assert temporal.terminated == [f"stigmer-session-{session['id']}"]


@pytest.mark.usefixtures("hello")
def test_the_runner_token_cannot_use_sessions(api: ApiServer) -> None:
    with httpx.Client(base_url=api.url, headers=api.runner_headers(), timeout=10) as runner:
        for method, path in (("GET", "/v1/sessions"), ("POST", "/v1/sessions"), ("DELETE", "/v1/sessions/x"),
                             ("POST", "/v1/sessions/x/messages")):
            response = runner.request(method, path, json={"agent": "hello", "message": "hi"})
            assert response.status_code == 403, (method, path)


@pytest.mark.usefixtures("hello")
def test_a_session_whose_start_temporal_could_not_confirm_is_started_by_its_first_message(
        http: httpx.Client, temporal: FakeTemporal) -> None:
    temporal.fail, temporal.unreachable = TimeoutError("slow"), RuntimeError("unreachable")
    unconfirmed = http.post("/v1/sessions", json={"agent": "hello", "name": "chat", "model": MODEL})
    assert unconfirmed.status_code == 503 and unconfirmed.json()["session_id"]
    assert temporal.started == []
    temporal.fail = temporal.unreachable = None
    turn = say(http, "chat", "hi")
    assert turn.status_code == 201, turn.text
    assert [s["id"] for s in temporal.started] == [f"stigmer-session-{unconfirmed.json()['session_id']}"]
    assert [u["id"] for u in temporal.updates] == [turn.json()["id"]]


@pytest.mark.usefixtures("hello")
def test_a_turn_may_name_another_model_and_says_so_in_its_update(http: httpx.Client, temporal: FakeTemporal) -> None:
    create(http)
    turn = http.post("/v1/sessions/chat/messages", json={"message": "hi", "model": "scripted:big.json",
                                                         "max_tokens_total": 500}).json()
    assert turn["model"]["model"] == "big.json"
    assert temporal.updates[0]["arg"] == TurnRequest(execution_id=turn["id"], message="hi", model="scripted:big.json",
                                                     max_tokens_total=500)
    unknown = http.post("/v1/sessions/chat/messages", json={"message": "hi", "model": "team-fast"})
    assert unknown.status_code == 400 and "unknown model 'team-fast'" in unknown.json()["detail"]
    assert len(temporal.updates) == 1
