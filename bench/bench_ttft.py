"""Benchmark: time to first token through stigmer vs the same request straight to the llama.cpp server.

    python bench/bench_ttft.py [--runs 8]

One run, on loopback, in a fresh ``STIGMER_HOME``: ``stigmer local start`` on the embedded model
(zero config), the example ``hello`` agent applied, then alternately:

- baseline: a streamed chat completion sent with httpx straight to the llama.cpp server the stack
  runs (same system prompt and message, same max_tokens), timed to the first content delta;
- API: ``POST /v1/executions`` then the execution's server-sent events, timed to the first ``token``
  event (what the platform adds: the daemon, Temporal, a workflow task, the model-call activity,
  the event post back and the fan-out);
- CLI: ``stigmer run hello MESSAGE --json`` as a subprocess, timed to its first ``token`` line
  (adds the CLI's own interpreter start-up and imports).

Target (issue 5): stigmer adds < 100 ms to the time to first token.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_local import REPO, _env, free_port, stigmer

MESSAGE = "Say hello."
MAX_TOKENS = 16


def _instructions() -> str:
    import yaml

    doc = yaml.safe_load((REPO / "examples/agents/hello.yaml").read_text())
    return str(doc["spec"]["instructions"])


def baseline(base_url: str, model: str) -> float:
    body = {"model": model, "stream": True, "max_tokens": MAX_TOKENS,
            "messages": [{"role": "system", "content": _instructions()}, {"role": "user", "content": MESSAGE}]}
    began = time.perf_counter()
    first = None
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=120) as resp:
        for line in resp.iter_lines():
            if first is None and line.startswith("data: ") and line != "data: [DONE]":
                delta = json.loads(line[6:])["choices"][0].get("delta", {})
                if delta.get("content"):
                    first = time.perf_counter() - began
    assert first is not None, "the llama.cpp server streamed no content"
    return first


def via_api(api: str, token: str) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    began = time.perf_counter()
    execution = httpx.post(f"{api}/v1/executions", json={"agent": "hello", "message": MESSAGE}, headers=headers,
                           timeout=60).json()
    first = None
    with httpx.stream("GET", f"{api}/v1/executions/{execution['id']}/events", headers=headers, timeout=120) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if first is None and event.get("type") == "token":
                    first = time.perf_counter() - began
    assert first is not None, "no token event"
    return first


def via_cli(env: dict[str, str]) -> float:
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "stigmer", "run", "hello", MESSAGE, "--json"], env=env,
                            stdout=subprocess.PIPE, text=True)
    first = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if first is None and json.loads(line).get("type") == "token":
            first = time.perf_counter() - began
    proc.wait(timeout=120)
    assert first is not None, "stigmer run printed no token"
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="stigmer-ttft-"))
    ports = {"api": free_port(), "temporal": free_port(), "ui": free_port(), "llm": free_port()}
    env = _env(home, ports)
    env["STIGMER_LLM_MAX_TOKENS"] = str(MAX_TOKENS)
    env["PYTHONPATH"] = str(REPO)
    started = stigmer(env, "local", "start")
    if started.returncode != 0:
        raise SystemExit(f"stigmer local start failed:\n{started.stderr}")
    try:
        applied = stigmer(env, "apply", "-f", str(REPO / "examples/agents/hello.yaml"))
        if applied.returncode != 0:
            raise SystemExit(f"stigmer apply failed:\n{applied.stderr}")
        base_url = env["STIGMER_LLM_BASE_URL"]
        model = httpx.get(f"{base_url}/models", timeout=10).json()["data"][0]["id"]
        token = (home / "run" / "token").read_text().strip()
        api = f"http://127.0.0.1:{ports['api']}"
        rows: dict[str, list[float]] = {"baseline": [], "api": [], "cli": []}
        via_api(api, token)  # warm-up: the runner's first model call builds the client
        for _ in range(args.runs):
            rows["baseline"].append(baseline(base_url, model))
            rows["api"].append(via_api(api, token))
            rows["cli"].append(via_cli(env))
    finally:
        stigmer(env, "local", "stop")
    base = statistics.median(rows["baseline"]) * 1000
    print(f"| path to first token (median of {args.runs}) | ms | added vs baseline | ratio |")
    print("|---|---|---|---|")
    print(f"| llama.cpp server straight (httpx, baseline) | {base:.0f} | | 1.00x |")
    for name, label in (("api", "stigmer API: POST execution + SSE"), ("cli", "`stigmer run --json` (new process)")):
        ms = statistics.median(rows[name]) * 1000
        print(f"| {label} | {ms:.0f} | +{ms - base:.0f} | {ms / base:.2f}x |")
    added = statistics.median(rows["api"]) * 1000 - base
    print(f"\ntarget: stigmer adds < 100 ms (API path): {'met' if added < 100 else 'MISSED'} (+{added:.0f} ms)")


if __name__ == "__main__":
    main()
