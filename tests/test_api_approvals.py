"""Approvals through the API, over a stand-in Temporal: the workflow judges a decision, the API passes it on.

What a client notices: a runner's ``approval_requested`` event makes a pending approval anyone can list, an
approve or reject is the ``decide_approval`` Update on the right workflow (the run's, or the session's for a
turn), bound to the recorded hash unless the client sends the one it showed, a refusal is a 409 with the
workflow's message (the approval stays pending), and the decision is recorded with who and when.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stigmer.worker.params import DECIDE_APPROVAL, ApprovalDecision
from tests.support.backends import both_backends  # noqa: F401  (each test on SQLite and PostgreSQL)
from tests.support.daemon_api import ApiServer, FakeTemporal

V1 = "agentic.stigmer.ai/v1"
MODEL = "scripted:x.json"


@pytest.fixture(autouse=True)
def hello(http: httpx.Client) -> None:
    doc = {"apiVersion": V1, "kind": "Agent", "metadata": {"name": "hello"}, "spec": {"instructions": "Be brief."}}
    assert http.post("/v1/apply", json={"documents": [doc]}).status_code == 200


def run(http: httpx.Client) -> str:
    response = http.post("/v1/executions", json={"agent": "hello", "message": "write it", "model": MODEL})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def request_approval(api: ApiServer, http: httpx.Client, execution_id: str, step: int = 1,
                     args: dict[str, Any] | None = None) -> str:
    approval_id = f"{execution_id}.{step}.0"
    data = {"approval_id": approval_id, "kind": "tool", "tool": "write_file", "args": args or {"path": "a.txt"},
            "args_hash": f"hash-{step}", "call_id": "c1", "step": step, "reason": "write_file changes files"}
    body = {"events": [{"execution_id": execution_id, "type": "approval_requested", "data": data}]}
    answer = http.post("/v1/events", json=body, headers=api.runner_headers()).json()
    assert answer["stored"] == 1
    return approval_id


def test_a_requested_approval_is_listed_pending_with_its_tool_and_arguments(
        api: ApiServer, http: httpx.Client) -> None:
    execution_id = run(http)
    approval_id = request_approval(api, http, execution_id)
    [listed] = http.get("/v1/approvals", params={"status": "pending"}).json()["items"]
    assert (listed["id"], listed["execution_id"], listed["tool"], listed["args"], listed["args_hash"]) == (
        approval_id, execution_id, "write_file", {"path": "a.txt"}, "hash-1")
    assert listed["status"] == "pending" and listed["question"] == "write_file changes files"
    assert http.get(f"/v1/approvals/{approval_id}").json() == listed
    assert http.get("/v1/approvals", params={"execution": execution_id}).json()["items"] == [listed]
    assert http.get("/v1/approvals", params={"status": "approved"}).json()["items"] == []


def test_approving_sends_the_update_to_the_runs_workflow_bound_to_the_recorded_hash(
        api: ApiServer, http: httpx.Client, temporal: FakeTemporal) -> None:
    execution_id = run(http)
    approval_id = request_approval(api, http, execution_id)
    response = http.post(f"/v1/approvals/{approval_id}/approve", json={"always": True, "by": "ann"})
    assert response.status_code == 200, response.text
    [update] = temporal.updates
    assert (update["workflow_id"], update["name"]) == (f"stigmer-exec-{execution_id}", DECIDE_APPROVAL)
    assert update["arg"] == ApprovalDecision(approval_id=approval_id, args_hash="hash-1", approve=True, reason="",
                                             always=True, by="ann")
    decided = response.json()
    assert (decided["status"], decided["decided_by"], decided["always"]) == ("approved", "ann", True)
    assert decided["decided_at"] is not None
    # the workflow's own approval_decided event confirms it later and changes nothing
    body = {"events": [{"execution_id": execution_id, "type": "approval_decided",
                        "data": {"approval_id": approval_id, "decision": "approved", "by": "ann"}}]}
    http.post("/v1/events", json=body, headers=api.runner_headers())
    assert http.get(f"/v1/approvals/{approval_id}").json()["status"] == "approved"


def test_rejecting_a_session_turns_call_goes_to_the_sessions_workflow_with_the_hash_shown(
        api: ApiServer, http: httpx.Client, temporal: FakeTemporal) -> None:
    session = http.post("/v1/sessions", json={"agent": "hello", "name": "chat", "model": MODEL}).json()
    turn = http.post("/v1/sessions/chat/messages", json={"message": "write it"}).json()
    approval_id = request_approval(api, http, turn["id"])
    response = http.post(f"/v1/approvals/{approval_id}/reject", json={"reason": "not that file",
                                                                      "args_hash": "hash-shown"})
    assert response.status_code == 200, response.text
    update = temporal.updates[-1]
    assert (update["workflow_id"], update["name"]) == (f"stigmer-session-{session['id']}", DECIDE_APPROVAL)
    assert update["arg"] == ApprovalDecision(approval_id=approval_id, args_hash="hash-shown", approve=False,
                                             reason="not that file", always=False, by="admin")
    assert (response.json()["status"], response.json()["reason"]) == ("rejected", "not that file")
    assert [a["id"] for a in http.get("/v1/approvals", params={"session": "chat"}).json()["items"]] == [approval_id]


def test_a_decision_the_workflow_refuses_is_a_409_with_its_message_and_stays_pending(
        api: ApiServer, http: httpx.Client, temporal: FakeTemporal) -> None:
    execution_id = run(http)
    approval_id = request_approval(api, http, execution_id)
    temporal.reject = "these arguments are not the ones awaiting approval"
    response = http.post(f"/v1/approvals/{approval_id}/approve", json={"args_hash": "other"})
    assert response.status_code == 409
    assert "these arguments are not the ones awaiting approval" in response.json()["detail"]
    assert approval_id in response.json()["hint"]
    assert http.get(f"/v1/approvals/{approval_id}").json()["status"] == "pending"


def test_a_decision_for_an_ended_run_is_refused(api: ApiServer, http: httpx.Client, temporal: FakeTemporal) -> None:
    execution_id = run(http)
    approval_id = request_approval(api, http, execution_id)
    temporal.lost = True  # its workflow has closed and is gone
    response = http.post(f"/v1/approvals/{approval_id}/approve", json={})
    assert response.status_code == 409 and "has ended" in response.json()["detail"]


def test_an_unknown_approval_is_a_404_and_a_bad_body_names_the_field(http: httpx.Client) -> None:
    for response in (http.get("/v1/approvals/nope"), http.post("/v1/approvals/nope/approve", json={})):
        assert response.status_code == 404 and "approval list" in response.json()["hint"]
    bad = http.post("/v1/approvals/nope/reject", json={"reason": 5})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "body.reason"
    wrong = http.get("/v1/approvals", params={"status": "maybe"})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["loc"] == "query.status"


def test_the_runner_token_cannot_read_or_decide_approvals(api: ApiServer, http: httpx.Client,
                                                          temporal: FakeTemporal) -> None:
    approval_id = request_approval(api, http, run(http))
    with httpx.Client(base_url=api.url, headers=api.runner_headers(), timeout=10) as runner:
        assert runner.get("/v1/approvals").status_code == 403
        assert runner.post(f"/v1/approvals/{approval_id}/approve", json={}).status_code == 403
    assert temporal.updates == []


def test_a_forged_decision_event_neither_blocks_the_persons_decision_nor_stands_in_the_record(
        api: ApiServer, http: httpx.Client, temporal: FakeTemporal) -> None:
    """A runner's token can post events; a made-up ``approval_decided`` must not stop the real decision."""
    execution_id = run(http)
    approval_id = request_approval(api, http, execution_id)
    forged = {"approval_id": approval_id, "decision": "approved", "by": "mallory", "reason": ""}
    body = {"events": [{"execution_id": execution_id, "type": "approval_decided", "data": forged}]}
    assert http.post("/v1/events", json=body, headers=api.runner_headers()).status_code == 200
    response = http.post(f"/v1/approvals/{approval_id}/reject", json={"reason": "not that file", "by": "alice"})
    assert response.status_code == 200, response.text  # the workflow, not the store, judges the decision
    [update] = temporal.updates
    assert (update["workflow_id"], update["name"]) == (f"stigmer-exec-{execution_id}", DECIDE_APPROVAL)
    record = http.get(f"/v1/approvals/{approval_id}").json()
    assert (record["status"], record["decided_by"], record["reason"]) == ("rejected", "alice", "not that file")
