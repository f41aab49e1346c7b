"""Observability as an operator sees it: traces exported over OTLP to a collector (a recorder on loopback), and the
Temporal SDK's metrics on a runner, for Prometheus or over OTLP.

With the standard ``OTEL_*`` variables set, one execution started through the API makes one trace: the API's
request, the workflow start, the workflow and its activities on the runner, the model call and the tool call,
linked parent to child across the two processes. With them unset (or ``OTEL_SDK_DISABLED`` / ``OTEL_TRACES_EXPORTER=
none``), nothing is sent and OpenTelemetry's SDK is never imported. No span carries the API key, the prompt or a
tool's arguments.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from stigmer._telemetry import redact_url, traces_wanted
from tests.support.agents import execution, runner_env, running, spawn_runner, start, wait_for
from tests.support.codec import codec_client
from tests.support.local_daemon import LocalStack
from tests.support.otlp import OtlpReceiver, Span
from tests.support.ports import free_port
from tests.support.scripted_provider import write_script

KEY = f"sk-ant-OTEL-SENTINEL-{secrets.token_hex(8)}"
PROMPT = f"prompt-sentinel-{secrets.token_hex(8)}"
ARGUMENT = f"argument-sentinel-{secrets.token_hex(8)}"
FAST_BATCHES = {"OTEL_BSP_SCHEDULE_DELAY": "100"}  # the SDK's own variable: spans leave every 100 ms, not 5 s


def _agent(home: Path) -> Path:
    script = write_script(home / "otel.json", [
        {"content": "Writing.", "tool_calls": [{"name": "write_file", "args": {"path": "n.txt", "content": ARGUMENT}}]},
        {"content": "Done."}])
    path = home / "otel.yaml"
    path.write_text("apiVersion: agentic.stigmer.ai/v1\nkind: Agent\nmetadata:\n  name: otel\n"
                    f"spec:\n  instructions: Do the steps.\n  model: 'scripted:{script}'\n"
                    "  tools: [workspace]\n  approvals: {mode: never}\n")
    return path


def _ancestors(span: Span, by_id: dict[str, Span]) -> list[Span]:
    """``span``'s parents up to the root, nearest first (a parent not received ends the chain)."""
    chain = []
    while span.parent_id and span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


@pytest.mark.slow
def test_one_execution_is_one_trace_from_the_api_request_to_the_model_and_tool_calls(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with OtlpReceiver() as otlp:
        stack = LocalStack.scripted(home, OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url, ANTHROPIC_API_KEY=KEY, **FAST_BATCHES)
        try:
            started = stack.start()
            assert started.returncode == 0, started.stderr
            assert stack.run("apply", "-f", str(_agent(home))).returncode == 0
            ran = stack.run("run", "otel", PROMPT, "--json")
            assert ran.returncode == 0, ran.stderr
            wanted = ("POST /v1/executions", "RunWorkflow:StigmerAgent", "chat", "execute_tool write_file")
            wait_for(lambda: all(any(s.name.startswith(w) for s in otlp.spans) for w in wanted), timeout=30,
                     what=f"spans {wanted}")
        finally:
            stack.cleanup()
    by_id = {s.span_id: s for s in otlp.spans}
    chat = next(s for s in otlp.spans if s.name.startswith("chat "))
    tool = otlp.named("execute_tool write_file")[0]
    request = otlp.named("POST /v1/executions")[0]
    for leaf, activity in ((chat, "RunActivity:stigmer.call_model"), (tool, "RunActivity:stigmer.call_tool")):
        chain = [s.name for s in _ancestors(leaf, by_id)]
        assert chain[0] == activity and chain[-1] == "POST /v1/executions", chain  # linked up to the API request
        assert "StartWorkflow:StigmerAgent" in chain and f"StartActivity:{activity.split(':')[1]}" in chain, chain
        assert leaf.trace_id == request.trace_id
    # The SDK's interceptor makes the workflow's own span a sibling of its activities' (both under the start).
    run = otlp.named("RunWorkflow:StigmerAgent")[0]
    assert [s.name for s in _ancestors(run, by_id)] == ["StartWorkflow:StigmerAgent", "POST /v1/executions"]
    assert request.service == "stigmer-api" and chat.service == tool.service == "stigmer-runner"
    assert chat.attributes["gen_ai.provider.name"] == "scripted" and chat.attributes["gen_ai.operation.name"] == "chat"
    assert {"gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"} <= set(chat.attributes)
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    assert tool.attributes["gen_ai.tool.name"] == "write_file" and tool.attributes["stigmer.tool.is_error"] is False
    raw = b"".join(body for _, body in otlp.bodies)
    for secret in (KEY, PROMPT, ARGUMENT):  # not in any span, attribute, event or resource: the raw bytes sent
        assert secret.encode() not in raw, secret


_OFF = [{}, {"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}]


@pytest.mark.slow
@pytest.mark.parametrize("off", _OFF, ids=["unset", "sdk-disabled", "exporter-none"])
async def test_without_the_variables_a_runner_sends_nothing(tmp_path: Path, temporal_server: Any,
                                                            off: dict[str, str]) -> None:
    client = await codec_client(temporal_server.address)
    queue = f"otel-{uuid.uuid4().hex[:8]}"
    script = write_script(tmp_path / "s.json", [{"content": "Untraced."}])
    with OtlpReceiver() as otlp:
        endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url} if off else {}
        log = tmp_path / "runner.log"
        with running(spawn_runner(runner_env(temporal_server.address, queue, {**endpoint, **off, **FAST_BATCHES}),
                                  log)):
            assert (await (await start(client, execution(script, PROMPT), queue)).result()).output == "Untraced."
    assert otlp.bodies == []
    assert "tracing:" not in log.read_text()


def test_without_the_variables_opentelemetry_is_never_imported() -> None:
    """Zero cost: the hooks stigmer calls in every process import no SDK, exporter or instrumentation."""
    code = ("import os, sys\n"
            "from fastapi import FastAPI\n"
            "from stigmer._telemetry import client_interceptors, instrument_app, sdk_metrics, span\n"
            "assert client_interceptors() == [] and sdk_metrics('', os.environ) is None\n"
            "instrument_app(FastAPI())\n"
            "with span('x', {}) as s: assert s is None\n"
            "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter',"
            " 'opentelemetry.instrumentation', 'temporalio.contrib.opentelemetry'))))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("env", "wanted"), [
    ({}, False),
    ({"OTEL_SERVICE_NAME": "x"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "console,otlp"}, True),
    ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:4318/v1/metrics"}, False),
])
def test_which_variables_turn_traces_on(env: dict[str, str], wanted: bool) -> None:
    assert traces_wanted(env) is wanted


def test_an_outgoing_requests_recorded_url_keeps_no_query_or_credentials() -> None:
    class Recorded:
        def __init__(self) -> None:
            self.attributes = {"url.full": "x", "http.url": "x"}

        def is_recording(self) -> bool:
            return True

        def set_attribute(self, key: str, value: str) -> None:
            self.attributes[key] = value

    class Request:
        url = httpx.URL("https://user:pw@mcp.example:8443/v1/call?key=SECRET&x=1")

    span = Recorded()
    redact_url(span, Request())
    assert span.attributes == {"url.full": "https://mcp.example:8443/v1/call",
                               "http.url": "https://mcp.example:8443/v1/call"}


def _metrics(address: str) -> str:
    try:
        return httpx.get(f"http://{address}/metrics", timeout=5).text
    except httpx.TransportError:
        return ""


@pytest.mark.slow
async def test_a_runner_serves_the_temporal_sdk_metrics_at_its_metrics_address(tmp_path: Path,
                                                                              temporal_server: Any) -> None:
    client = await codec_client(temporal_server.address)
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    address = f"127.0.0.1:{free_port()}"
    script = write_script(tmp_path / "s.json", [{"content": "Counted."}])
    env = runner_env(temporal_server.address, queue, {"STIGMER_RUNNER_METRICS_ADDRESS": "127.0.0.1:1"})
    log = tmp_path / "runner.log"
    with running(spawn_runner(env, log, "--metrics-address", address)):  # the flag wins
        assert (await (await start(client, execution(script), queue)).result()).output == "Counted."
        wait_for(lambda: "temporal_workflow_completed" in _metrics(address), timeout=30, what="SDK metrics")
        text = _metrics(address)
    assert f'task_queue="{queue}"' in text
    assert "temporal_activity_execution_latency" in text
    assert f"metrics: the Temporal SDK's at http://{address}/metrics" in log.read_text()


@pytest.mark.slow
def test_a_metrics_address_in_use_is_a_clear_error(tmp_path: Path, temporal_server: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        env = {**os.environ, **runner_env(temporal_server.address, "unused"), "STIGMER_RUNNER_METRICS_ADDRESS": address}
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
        out = subprocess.run([sys.executable, "-m", "stigmer", "runner"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert out.returncode != 0
    assert f"error: cannot export the runner's metrics at {address}" in out.stderr
    assert "Address already in use" in out.stderr and "--metrics-address" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
async def test_a_runner_sends_the_sdk_metrics_over_otlp_when_asked(tmp_path: Path, temporal_server: Any) -> None:
    client = await codec_client(temporal_server.address)
    queue = f"otlpm-{uuid.uuid4().hex[:8]}"
    script = write_script(tmp_path / "s.json", [{"content": "Exported."}])
    with OtlpReceiver() as otlp:
        otel = {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{otlp.url}/v1/metrics", "OTEL_METRIC_EXPORT_INTERVAL": "200"}
        env = runner_env(temporal_server.address, queue, otel)
        with running(spawn_runner(env, tmp_path / "runner.log")):
            assert (await (await start(client, execution(script), queue)).result()).output == "Exported."
            wait_for(lambda: any("workflow_completed" in n for n in otlp.metric_names), timeout=30,
                     what="SDK metrics over OTLP")
    assert otlp.spans == []  # metrics only: no traces were asked for
    assert any(name.startswith("temporal_") for name in otlp.metric_names), sorted(otlp.metric_names)


@pytest.mark.slow
async def test_with_the_tracing_interceptor_traced_and_saved_histories_replay(
        tmp_path: Path, temporal_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interceptor adds a header to starts and activities; workflows must replay with it, and replaying makes no
    span (a replayed workflow would otherwise report its steps twice)."""
    import asyncio

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from temporalio.client import WorkflowHistory
    from temporalio.contrib.opentelemetry import TracingInterceptor
    from temporalio.worker import Replayer

    from stigmer.worker.main import _workflow_runner, run_worker
    from stigmer.worker.session import SessionWorkflow
    from stigmer.worker.workflows import AgentWorkflow
    from tests.support.agents import resolve_for
    from tests.test_history_replay import SAVED, _replayer

    provider, exported = TracerProvider(), InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracer = provider.get_tracer("test")  # this test's own provider: the process-wide one stays untouched
    queue = f"replay-{uuid.uuid4().hex[:8]}"
    env = runner_env(temporal_server.address, queue)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = await codec_client(temporal_server.address, interceptors=[TracingInterceptor(tracer)])
    script = write_script(tmp_path / "s.json", [
        {"content": "", "tool_calls": [{"name": "list_files", "args": {}}]}, {"content": "Traced."}])
    stop, ready = asyncio.Event(), asyncio.Event()
    worker = asyncio.create_task(run_worker(resolve_for(env), stop, client=client, ready=ready))
    await asyncio.wait_for(ready.wait(), 60)
    try:
        with tracer.start_as_current_span("request"):
            handle = await start(client, execution(script, workspace=tmp_path, tools=["workspace"]), queue)
        assert (await handle.result()).output == "Traced."
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
    names = {s.name for s in exported.get_finished_spans()}
    assert {"StartWorkflow:StigmerAgent", "RunActivity:stigmer.call_tool"} <= names
    before = len(exported.get_finished_spans())
    traced = Replayer(workflows=[AgentWorkflow, SessionWorkflow], workflow_runner=_workflow_runner(),
                      data_converter=client.data_converter, interceptors=[TracingInterceptor(tracer)])
    await traced.replay_workflow(await handle.fetch_history())
    for path in SAVED:  # recorded before tracing existed: no header at all
        blobs = path.with_suffix(".blobs")
        config = _replayer(blobs if blobs.is_dir() else None).config()
        config["interceptors"] = [TracingInterceptor(tracer)]
        await Replayer(**config).replay_workflow(WorkflowHistory.from_json(path.stem, path.read_text()))
    assert len(exported.get_finished_spans()) == before
