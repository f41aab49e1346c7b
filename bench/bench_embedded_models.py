"""The two bundled embedded models side by side: SmolLM2-135M-Instruct (the default) and Gemma 3 270M (base).

Usage: python bench/bench_embedded_models.py [--runs N] [--tokens N] [--max-tokens N]

Both run on llama.cpp's real server, started the way the daemon starts it (``server_command``), in the same run:
1. load time: from spawning the server until ``/v1/models`` answers (the model is loaded);
2. time to first token and tokens/s over a longer reply (``--tokens``), median of ``--runs`` streamed requests,
   alternating between the two servers so that drift on the machine hits both alike;
3. the answers to a fixed set of short prompts (temperature 0, at most ``--max-tokens`` tokens), printed verbatim;
4. one emulated tool call each for the example agents ``files`` and ``clock`` (the first step of a turn, as the
   runner sends it to a bundled model: tools in the system prompt, a call-only JSON schema), time and output.
Requests go straight to each server with httpx: this measures the models, not stigmer's provider layer
(``bench_providers.py`` measures that).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from stigmer.providers.names import BUNDLED_MODEL, GEMMA_MODEL

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.support
from tests.support.llamacpp import LlamaCppServer, gemma_file, start_llamacpp

PROMPTS = (
    "Say hello.",
    "What is the capital of France?",
    "What is 12 + 7?",
    "Write a haiku about the sea.",
    "Name three colours.",
)
LONG_PROMPT = "Write a long story about a lighthouse keeper."


def chat(client: httpx.Client, base_url: str, model: str, prompt: str,
         max_tokens: int) -> tuple[float, int, float, str]:
    """(seconds to first token, tokens, total seconds, text) for one streamed chat request."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True}
    start, first, tokens, parts = time.perf_counter(), 0.0, 0, []
    with client.stream("POST", base_url + "/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"]
            if delta.get("content"):
                tokens += 1
                parts.append(delta["content"])
                first = first or time.perf_counter() - start
    return first, tokens, time.perf_counter() - start, "".join(parts)


def emulated(client: httpx.Client, base_url: str, model: str) -> list[tuple[str, float, str]]:
    """(prompt, seconds, reply) of the first, call-only step of an emulated turn for the files and clock agents."""
    from stigmer.worker import _toolemu
    from stigmer.worker.params import ToolSchema
    from stigmer.worker.tools.builtin import builtin_schemas

    clock = [ToolSchema("get_time", "The current time in UTC as ISO 8601 (only UTC is supported).",
                        {"type": "object", "properties": {"timezone": {"type": "string", "default": "UTC"}}}),
             ToolSchema("echo", "Return ``text`` unchanged.",
                        {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})]
    cases = [("You manage files in your workspace.", builtin_schemas(["workspace"]), "Write a haiku to haiku.txt"),
             ("You answer questions about the current time using the get_time tool.", clock, "What time is it?")]
    out = []
    for system, tools, prompt in cases:
        messages = _toolemu.render([{"role": "system", "content": system}, {"role": "user", "content": prompt}], tools)
        body = {"model": model, "messages": messages, "max_tokens": 128, "temperature": 0,
                "response_format": {"type": "json_object", "schema": _toolemu.schema(tools, answer=False)}}
        began = time.perf_counter()
        reply = client.post(base_url + "/chat/completions", json=body).json()["choices"][0]["message"]["content"]
        out.append((prompt, time.perf_counter() - began, " ".join(reply.split())))
    return out


def start(name: str, path: Path, logs: Path) -> tuple[LlamaCppServer, float]:
    began = time.perf_counter()
    server = start_llamacpp(logs / f"{name}.log", path)
    return server, time.perf_counter() - began


def measure(servers: dict[str, LlamaCppServer], runs: int, tokens: int, max_tokens: int) -> dict[str, Any]:
    out: dict[str, Any] = {name: {"long": [], "answers": []} for name in servers}
    with httpx.Client(timeout=300) as client:
        for name, server in servers.items():  # one warm-up request each
            chat(client, server.base_url, name, "Hi", 1)
        for _ in range(runs):
            for name, server in servers.items():
                out[name]["long"].append(chat(client, server.base_url, name, LONG_PROMPT, tokens))
        for prompt in PROMPTS:
            for name, server in servers.items():
                out[name]["answers"].append(chat(client, server.base_url, name, prompt, max_tokens))
        for name, server in servers.items():
            out[name]["emulated"] = emulated(client, server.base_url, name)
    return out


def report(loads: dict[str, float], files: dict[str, Path], results: dict[str, Any], args: Any) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, {platform.system()} {platform.release()}; "
          f"python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M %Z')}; load average after: {load}")
    print("\n| model | file | size MB | load s | first token ms (median) | tokens/s (median, "
          f"{args.tokens}-token reply) |")
    print("|---|---|---|---|---|---|")
    for name, result in results.items():
        long = result["long"]
        ttft = statistics.median(r[0] for r in long) * 1000
        tps = statistics.median(r[1] / r[2] for r in long)
        spread = f"{min(r[1] / r[2] for r in long):.0f}-{max(r[1] / r[2] for r in long):.0f}"
        print(f"| {name} | {files[name].name} | {files[name].stat().st_size / 1e6:.0f} | {loads[name]:.2f} | "
              f"{ttft:.0f} | {tps:.1f} (range {spread}, {len(long)} runs) |")
    print("\n| model | emulated tool call (first step) | s | reply |")
    print("|---|---|---|---|")
    for name, result in results.items():
        for prompt, seconds, reply in result["emulated"]:
            print(f"| {name} | {prompt} | {seconds:.2f} | `{reply}` |")
    for index, prompt in enumerate(PROMPTS):
        print(f"\n**{prompt}**")
        for name, result in results.items():
            first, count, total, text = result["answers"][index]
            print(f"\n- {name} ({count} tokens, {total:.2f} s, first token {first * 1000:.0f} ms):")
            print("\n  ```\n" + "\n".join("  " + line for line in text.strip().splitlines()) + "\n  ```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    from stigmer.providers.embedded import smollm2_file

    files = {BUNDLED_MODEL: smollm2_file(), GEMMA_MODEL: gemma_file()}
    logs = Path(tempfile.mkdtemp(prefix="stigmer-bench-models-"))
    servers: dict[str, LlamaCppServer] = {}
    loads: dict[str, float] = {}
    try:
        for name, path in files.items():  # one after the other: each load has the machine to itself
            servers[name], loads[name] = start(name, path, logs)
        results = measure(servers, args.runs, args.tokens, args.max_tokens)
    finally:
        for server in servers.values():
            server.stop()
    report(loads, files, results, args)


if __name__ == "__main__":
    sys.exit(main())
