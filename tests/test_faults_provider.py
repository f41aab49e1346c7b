"""Provider faults through the real workflow: a real Temporal dev server, a real runner, real LangChain clients.

The LLM side is the Anthropic and Ollama protocol doubles (real HTTP servers on loopback), told to
fail the next request the way real providers fail: 429 with ``retry-after``, 500, 529 overloaded,
a connection reset (before the answer and in the middle of a stream), a stall, a rejected key.
What a user would notice is asserted: the execution's final result, how many attempts it took,
how long a rate-limited retry waited, and the event stream (``failed`` carrying the clear message).

One runner (in a thread, with its own event loop) and one event collector serve the whole module.
"""

from __future__ import annotations

import json
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError

from stigmer.providers.spec import ModelSpec
from tests.support.agents import EventCollector, resolve_for, start, wait_for
from tests.support.anthropic_double import AnthropicDouble
from tests.support.codec import codec_client
from tests.support.daemon_api import WorkerThread
from tests.support.http_double import Request
from tests.support.ollama_double import OllamaDouble, start_ollama_double

pytestmark = pytest.mark.slow

KEY = "sk-ant-faults-0000"
REPLY = "All good after the fault."
MODEL = "claude-haiku-5-5"


class MidStreamDouble(AnthropicDouble):
    """The Anthropic double, plus a fault the base double lacks: a TCP reset after part of a stream was sent."""

    def __init__(self, api_key: str) -> None:
        super().__init__(api_key)
        self.cut_streams = 0
        self.stalled_streams = 0
        self.stall_s = 0.0

    def _stream(self, request: Request, body: dict[str, Any], blocks: list[dict[str, Any]]) -> None:
        if not self.cut_streams and not self.stalled_streams:
            super()._stream(request, body, blocks)
            return
        cut = bool(self.cut_streams)
        if cut:
            self.cut_streams -= 1
        else:
            self.stalled_streams -= 1
        request.start_stream("text/event-stream")
        start = {"type": "message_start", "message": {"id": "msg_cut", "type": "message", "role": "assistant",
                                                      "model": body.get("model", ""), "content": [],
                                                      "stop_reason": None, "stop_sequence": None,
                                                      "usage": {"input_tokens": 3, "output_tokens": 1}}}
        request.write(f"event: message_start\ndata: {json.dumps(start)}\n\n")
        request.write('event: content_block_start\ndata: {"type": "content_block_start", "index": 0, '
                      '"content_block": {"type": "text", "text": ""}}\n\n')
        request.write('event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
                      '"delta": {"type": "text_delta", "text": "Half an ans"}}\n\n')
        if not cut:  # a stream that goes quiet half-way, then (too late) closes
            time.sleep(self.stall_s)
            return
        sock: socket.socket = request.handler.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST: the client sees the connection die mid-stream


@pytest.fixture(scope="module")
def anthropic() -> Iterator[MidStreamDouble]:
    double = MidStreamDouble(KEY)
    double.reply = REPLY
    yield double
    double.stop()


@pytest.fixture(scope="module")
def ollama() -> Iterator[OllamaDouble]:
    double = start_ollama_double()
    double.add_model("llama3.2:3b", reply=REPLY)
    yield double
    double.stop()


@pytest.fixture(scope="module")
def collector() -> Iterator[EventCollector]:
    with EventCollector() as c:
        yield c


@pytest.fixture(scope="module")
def queue() -> str:
    return f"faults-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def worker(temporal_server: Any, anthropic: MidStreamDouble, collector: EventCollector, queue: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerThread]:
    """One runner for the module: the Anthropic key is in its settings, never in workflow input."""
    env = {"STIGMER_HOME": str(tmp_path_factory.mktemp("home")), "ANTHROPIC_API_KEY": KEY,
           "STIGMER_LLM_PROVIDER": "anthropic", "STIGMER_LLM_BASE_URL": anthropic.url,
           "TEMPORAL_ADDRESS": temporal_server.address, "STIGMER_RUNNER_TASK_QUEUE": queue, **collector.env()}
    with pytest.MonkeyPatch.context() as mp:  # the event sink reads its URL and token from the environment
        for name, value in env.items():
            mp.setenv(name, value)
        with WorkerThread(resolve_for(env)) as thread:
            yield thread


@pytest.fixture
async def client(temporal_server: Any, worker: WorkerThread) -> Client:
    return await codec_client(temporal_server.address)


def _execution(spec: ModelSpec, **tunables: Any) -> Any:
    from stigmer.worker.params import ExecutionInput, Tunables
    from tests.support.agents import agent

    execution_id = uuid.uuid4().hex[:12]
    tunables = {"retry_initial": 0.1, "retry_max": 1.0, **tunables}
    return ExecutionInput(execution_id=execution_id, agent_name="tester", agent=agent(), model=spec,
                          message=f"marker-{execution_id}", max_steps=3, tunables=Tunables(**tunables), by_ref=True,
                          final_in_call=True)


def _anthropic_spec(double: AnthropicDouble) -> ModelSpec:
    return ModelSpec(provider="anthropic", model=MODEL, base_url=double.url, reason="test")


def _ollama_spec(double: OllamaDouble) -> ModelSpec:
    return ModelSpec(provider="ollama", model="llama3.2:3b", base_url=double.url, reason="test")


def _attempts(double: AnthropicDouble | OllamaDouble, inp: Any) -> int:
    """How many model requests this execution sent (its message is unique)."""
    marker = inp.message
    return sum(1 for r in list(double.requests) if marker in json.dumps(r.body))


def _final_events(collector: EventCollector, inp: Any, kind: str) -> list[dict[str, Any]]:
    wait_for(lambda: any(e["type"] == kind for e in collector.of(inp.execution_id)), what=f"{kind} event")
    return collector.of(inp.execution_id)


async def _completes(client: Client, queue: str, collector: EventCollector, inp: Any) -> list[dict[str, Any]]:
    handle = await start(client, inp, queue)
    result = await handle.result()
    assert (result.status, result.output, result.steps) == ("completed", REPLY, 1)
    events = _final_events(collector, inp, "completed")
    assert events[-1]["type"] == "completed" and events[-1]["data"]["output"] == REPLY
    return events


@pytest.mark.parametrize(("status", "what"), [(500, "server error"), (529, "overloaded")])
async def test_a_server_error_is_retried_and_the_execution_completes(
        client: Client, queue: str, anthropic: MidStreamDouble, collector: EventCollector, status: int,
        what: str) -> None:
    inp = _execution(_anthropic_spec(anthropic))
    anthropic.fail_next(status, times=2, message=f"injected {what}")
    events = await _completes(client, queue, collector, inp)
    assert _attempts(anthropic, inp) == 3
    assert [e["data"]["attempt"] for e in events if e["type"] == "step_started"] == [1, 2, 3]


async def test_a_429_waits_for_retry_after_then_completes(client: Client, queue: str, anthropic: MidStreamDouble,
                                                          collector: EventCollector) -> None:
    # The backoff is 30 s: only the server's retry-after can make the retry come after about a second.
    inp = _execution(_anthropic_spec(anthropic), retry_initial=30.0, retry_max=60.0)
    anthropic.fail_next(429, retry_after=1, message="slow down")
    began = time.monotonic()
    events = await _completes(client, queue, collector, inp)
    assert time.monotonic() - began < 20
    assert _attempts(anthropic, inp) == 2
    starts = [e["ts"] for e in events if e["type"] == "step_started"]
    assert len(starts) == 2
    assert 0.9 <= starts[1] - starts[0] < 10, f"the retry came {starts[1] - starts[0]:.2f}s after the 429"


async def test_a_connection_reset_before_the_answer_is_retried(client: Client, queue: str,
                                                               anthropic: MidStreamDouble,
                                                               collector: EventCollector) -> None:
    inp = _execution(_anthropic_spec(anthropic))
    anthropic.reset_next()
    await _completes(client, queue, collector, inp)
    assert _attempts(anthropic, inp) == 2


async def test_a_connection_reset_mid_stream_is_retried_and_the_answer_is_whole(
        client: Client, queue: str, anthropic: MidStreamDouble, collector: EventCollector) -> None:
    inp = _execution(_anthropic_spec(anthropic))
    anthropic.cut_streams = 1
    events = await _completes(client, queue, collector, inp)
    assert _attempts(anthropic, inp) == 2
    attempt_two = [e for e in events if e["type"] == "message"]
    assert [m["data"]["content"] for m in attempt_two] == [REPLY]  # the half answer never became a message


async def test_a_stalled_call_times_out_and_is_retried(client: Client, queue: str, anthropic: MidStreamDouble,
                                                       collector: EventCollector) -> None:
    # The worker heartbeats on a timer while it waits, so a stall is caught by the per-attempt timeout.
    inp = _execution(_anthropic_spec(anthropic), model_timeout=2.0, model_heartbeat=1.0)
    anthropic.stall_next(6.0)
    began = time.monotonic()
    await _completes(client, queue, collector, inp)
    assert time.monotonic() - began < 6.0, "the retry should not wait for the stalled answer"
    assert _attempts(anthropic, inp) == 2


async def test_a_stream_that_stalls_half_way_is_retried(client: Client, queue: str, anthropic: MidStreamDouble,
                                                        collector: EventCollector) -> None:
    inp = _execution(_anthropic_spec(anthropic), model_timeout=2.0, model_heartbeat=1.0)
    anthropic.stall_s, anthropic.stalled_streams = 6.0, 1
    began = time.monotonic()
    events = await _completes(client, queue, collector, inp)
    assert time.monotonic() - began < 6.0
    assert _attempts(anthropic, inp) == 2
    assert [m["data"]["content"] for m in events if m["type"] == "message"] == [REPLY]


async def test_a_stall_is_caught_by_the_stall_timeout_not_the_attempt_timeout(
        client: Client, queue: str, anthropic: MidStreamDouble, collector: EventCollector) -> None:
    # A generous per-attempt timeout: only the stall timer can end the stuck attempt early.
    inp = _execution(_anthropic_spec(anthropic), model_timeout=60.0, model_heartbeat=1.0, model_stall=1.5)
    anthropic.stall_s, anthropic.stalled_streams = 6.0, 1
    began = time.monotonic()
    events = await _completes(client, queue, collector, inp)
    assert time.monotonic() - began < 6.0, "the stalled stream should be abandoned after model_stall seconds"
    assert _attempts(anthropic, inp) == 2
    assert [m["data"]["content"] for m in events if m["type"] == "message"] == [REPLY]


async def test_a_rejected_key_fails_at_once_naming_the_variable(client: Client, queue: str,
                                                                anthropic: MidStreamDouble,
                                                                collector: EventCollector) -> None:
    inp = _execution(_anthropic_spec(anthropic))
    anthropic.fail_next(401, times=5, message="invalid x-api-key")
    began = time.monotonic()
    handle = await start(client, inp, queue)
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    anthropic.failures.clear()
    assert time.monotonic() - began < 5
    message = str(info.value.cause)
    assert "anthropic rejected the API key (401 Unauthorized)" in message
    assert "ANTHROPIC_API_KEY" in message
    assert _attempts(anthropic, inp) == 1
    events = _final_events(collector, inp, "failed")
    assert events[-1]["type"] == "failed"
    assert "rejected the API key" in events[-1]["data"]["error"] and "ANTHROPIC_API_KEY" in events[-1]["data"]["error"]
    assert KEY not in json.dumps(events)


async def _fails(client: Client, queue: str, collector: EventCollector, inp: Any) -> str:
    """Run ``inp`` to its failure; the message the user sees (also checked on the ``failed`` event)."""
    handle = await start(client, inp, queue)
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    message = str(getattr(info.value.cause, "message", info.value.cause))
    events = _final_events(collector, inp, "failed")
    assert events[-1]["type"] == "failed" and events[-1]["data"]["error"] == message
    return message


async def test_retries_are_bounded_and_the_last_error_is_reported(client: Client, queue: str,
                                                                  anthropic: MidStreamDouble,
                                                                  collector: EventCollector) -> None:
    inp = _execution(_anthropic_spec(anthropic), model_max_attempts=3)
    anthropic.fail_next(500, times=3, message="still broken")
    message = await _fails(client, queue, collector, inp)
    assert "anthropic server error (500)" in message and "still broken" in message
    assert _attempts(anthropic, inp) == 3


async def test_a_context_overflow_fails_at_once_with_what_to_do(client: Client, queue: str,
                                                                anthropic: MidStreamDouble,
                                                                collector: EventCollector) -> None:
    inp = _execution(_anthropic_spec(anthropic))
    anthropic.fail_next(400, times=3, message="prompt is too long: 250000 tokens > 200000 maximum")
    message = await _fails(client, queue, collector, inp)
    anthropic.failures.clear()
    assert "no longer fits" in message and "context" in message
    assert _attempts(anthropic, inp) == 1


async def test_an_ollama_model_that_is_not_pulled_fails_at_once_with_the_pull_command(
        client: Client, queue: str, ollama: OllamaDouble, collector: EventCollector) -> None:
    spec = ModelSpec(provider="ollama", model="qwen3:8b", base_url=ollama.url, reason="test")
    inp = _execution(spec)
    message = await _fails(client, queue, collector, inp)
    assert "not pulled" in message and "stigmer llm pull qwen3:8b" in message
    assert _attempts(ollama, inp) == 1


@pytest.mark.parametrize("fault", ["500", "429", "reset"])
async def test_ollama_faults_are_retried_and_the_execution_completes(
        client: Client, queue: str, ollama: OllamaDouble, collector: EventCollector, fault: str) -> None:
    inp = _execution(_ollama_spec(ollama))
    if fault == "reset":
        ollama.reset_next()
    else:
        ollama.fail_next(int(fault), retry_after=0.2, message="injected")
    await _completes(client, queue, collector, inp)
    assert _attempts(ollama, inp) == 2


async def test_an_anthropic_reply_cut_at_max_tokens_is_announced_and_marked(
        client: Client, queue: str, anthropic: MidStreamDouble, collector: EventCollector) -> None:
    spec = ModelSpec(provider="anthropic", model=MODEL, base_url=anthropic.url, params={"max_tokens": 64},
                     reason="test")
    inp = _execution(spec)
    anthropic.stop_reason = "max_tokens"  # the Messages API's stop reason for a reply cut at max_tokens
    try:
        events = await _completes(client, queue, collector, inp)
    finally:
        anthropic.stop_reason = None
    assert [e["data"] for e in events if e["type"] == "truncated"] == [{"step": 1, "max_tokens": 64}]
    done = dict(events[-1]["data"])
    assert done.pop("usage")["output_tokens"] > 0  # usage rides on the terminal event (docs/SESSIONS.md)
    assert done == {"output": REPLY, "steps": 1, "truncated": True}


async def test_an_ollama_reply_cut_at_num_predict_is_announced_and_marked(
        client: Client, queue: str, ollama: OllamaDouble, collector: EventCollector) -> None:
    ollama.add_model("cut:1b", reply=REPLY, done_reason="length")  # Ollama's done_reason for a reply at num_predict
    spec = ModelSpec(provider="ollama", model="cut:1b", base_url=ollama.url, params={"num_predict": 32},
                     reason="test")
    events = await _completes(client, queue, collector, _execution(spec))
    assert [e["data"] for e in events if e["type"] == "truncated"] == [{"step": 1, "max_tokens": 32}]
    assert events[-1]["data"]["truncated"] is True


async def test_a_reply_that_ended_by_itself_is_not_marked(client: Client, queue: str, anthropic: MidStreamDouble,
                                                         collector: EventCollector) -> None:
    events = await _completes(client, queue, collector, _execution(_anthropic_spec(anthropic)))
    assert not [e for e in events if e["type"] == "truncated"]
    assert "truncated" not in events[-1]["data"]


def test_the_key_is_not_in_the_workflow_input(anthropic: MidStreamDouble) -> None:
    """The spec the daemon pins in history carries the base URL, never the key the worker holds."""
    inp = _execution(_anthropic_spec(anthropic))
    from temporalio.converter import DataConverter

    payloads = DataConverter.default.payload_converter.to_payloads([inp])
    assert KEY not in b"".join(p.data for p in payloads).decode()
    assert anthropic.url in b"".join(p.data for p in payloads).decode()
