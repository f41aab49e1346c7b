"""Provider layer overhead and throughput against llama.cpp's real server, bare httpx as the baseline.

Usage: python bench/bench_providers.py [--runs N] [--tokens N]

Two measurements, both in the same run against one server (the default bundled model, SmolLM2-135M):
1. first token: stigmer's resolve_model + get_chat_model + stream until the first token, against
   one streamed httpx request to the server (warm: imports done, as in a running worker);
2. tokens/s over a longer reply: through stigmer's chat model vs the bare server (target >= 0.95x).
Runs alternate between the two paths so that drift on the machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from stigmer.config import resolve
from stigmer.providers import embedded, registry
from stigmer.providers.names import BUNDLED_MODEL, infer_provider

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.support
from tests.support.llamacpp import start_llamacpp

PROMPT = "Write a long story about a lighthouse keeper."


def bare(client: httpx.Client, base_url: str, max_tokens: int) -> tuple[float, int, float]:
    """(seconds to first token, tokens, total seconds) for one streamed request straight to the server."""
    body = {"model": BUNDLED_MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True}
    start, first, tokens = time.perf_counter(), 0.0, 0
    with client.stream("POST", base_url + "/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"]
            if delta.get("content"):
                tokens += 1
                first = first or time.perf_counter() - start
    return first, tokens, time.perf_counter() - start


def through_stigmer(cfg: Any, max_tokens: int) -> tuple[float, int, float]:
    """The same through the provider layer: resolve, build and stream, all inside the timing."""
    start, first, tokens = time.perf_counter(), 0.0, 0
    spec = registry.resolve_model(cfg, params={"max_tokens": max_tokens, "temperature": 0})
    for chunk in registry.get_chat_model(spec, cfg).stream(PROMPT):
        if chunk.content:
            tokens += 1
            first = first or time.perf_counter() - start
    return first, tokens, time.perf_counter() - start


def alternate(runs: int, a: Callable[[], tuple[float, int, float]],
              b: Callable[[], tuple[float, int, float]]) -> tuple[list[tuple[float, int, float]], ...]:
    out_a, out_b = [], []
    for _ in range(runs):
        out_a.append(a())
        out_b.append(b())
    return out_a, out_b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    server = start_llamacpp(Path(tempfile.mkdtemp(prefix="stigmer-bench-")) / "llamacpp.log")
    base_url = server.base_url
    try:
        with tempfile.TemporaryDirectory() as home:
            flags = {"llm.provider": ("llamacpp", "bench"), "llm.base_url": (base_url, "bench")}
            cfg = resolve(flags, env={"STIGMER_HOME": home}, infer_provider=infer_provider)
            start = time.perf_counter()
            through_stigmer(cfg, 1)
            cold = time.perf_counter() - start
            with httpx.Client(timeout=120) as client:
                bare(client, base_url, 1)
                first_b, first_s = alternate(args.runs, lambda: bare(client, base_url, 1),
                                             lambda: through_stigmer(cfg, 1))
                long_b, long_s = alternate(max(3, args.runs // 3), lambda: bare(client, base_url, args.tokens),
                                           lambda: through_stigmer(cfg, args.tokens))
    finally:
        server.stop()
    _print(cold, first_b, first_s, long_b, long_s)


def _print(cold: float, first_b: list[Any], first_s: list[Any], long_b: list[Any], long_s: list[Any]) -> None:
    ftb = statistics.median(r[0] for r in first_b) * 1000
    fts = statistics.median(r[0] for r in first_s) * 1000
    tps_b = statistics.median(r[1] / r[2] for r in long_b)
    tps_s = statistics.median(r[1] / r[2] for r in long_s)
    print("| measurement | baseline (bare httpx) | stigmer | ratio |")
    print("|---|---|---|---|")
    print(f"| first token, warm (resolve + build + stream), ms | {ftb:.1f} | {fts:.1f} | {fts / ftb:.2f}x |")
    print(f"| provider overhead to first token, ms | 0 | {fts - ftb:.1f} | |")
    print(f"| tokens/s, {long_b[0][1]}-token reply | {tps_b:.1f} | {tps_s:.1f} | {tps_s / tps_b:.3f}x |")
    print(f"| first call in a fresh process (imports included), ms | | {cold * 1000:.0f} | |")
    print(f"\nserver: llama.cpp (llama-cpp-python) with {embedded.SMOLLM2_FILE}, {os.cpu_count()} cpus; "
          f"target tokens/s ratio >= 0.95x: {'met' if tps_s / tps_b >= 0.95 else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
