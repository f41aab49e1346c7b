"""Benchmark: ``stigmer local start`` to ready, against the bare Temporal dev server it wraps.

    python bench/bench_local.py [--runs 3]

Measured in one run, on loopback, with a fresh ``STIGMER_HOME`` in a temp dir:

- baseline: ``temporal server start-dev`` (same flags stigmer uses, SQLite file, UI on) until its
  frontend reports SERVING;
- cold: ``stigmer local start`` from an empty home (zero config: the embedded model, assembled on
  first use; managed Temporal; one runner) until the command returns with everything ready;
- warm: the same home again (model file and Temporal database already there);
- by hand: the dev server and llama.cpp's server started side by side, until both answer (what
  stigmer wraps; the difference to "warm" is stigmer's own cost: the API, a runner, the probes).

Target: stigmer adds < 2 s over the baseline. The table prints medians, the ratio and the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.support
from tests.support.ports import free_port  # noqa: E402

from stigmer.daemon.temporal import temporal_binary  # noqa: E402


async def _serving(address: str) -> bool:
    from temporalio.client import Client

    try:
        client = await Client.connect(address)
        return bool(await client.service_client.check_health())
    except Exception:
        return False


def bare_temporal(tmp: Path) -> float:
    """Seconds from spawning the dev server to SERVING."""
    port = free_port()
    argv = [temporal_binary(), "server", "start-dev", "--ip", "127.0.0.1",
            "--port", str(port), "--ui-port", str(free_port()), "--ui-disable-news-fetch",
            "--http-port", str(free_port()), "--metrics-port", str(free_port()),
            "--db-filename", str(tmp / f"bare-{port}.db"), "--log-level", "warn"]
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not asyncio.run(_serving(f"127.0.0.1:{port}")):
            if proc.poll() is not None:
                raise SystemExit("the bare Temporal dev server exited")
            time.sleep(0.02)
        return time.perf_counter() - began
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def bare_temporal_and_llama(tmp: Path, model: Path) -> float:
    """Seconds to bring up the dev server and llama.cpp's server side by side, by hand, until both answer."""
    import httpx

    from stigmer.providers.embedded import server_command

    port = free_port()
    began = time.perf_counter()
    llama = subprocess.Popen(server_command(model, "127.0.0.1", port), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        took = bare_temporal(tmp)
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if llama.poll() is not None:
                raise SystemExit("the bare llama.cpp server exited")
            time.sleep(0.02)
        return max(took, time.perf_counter() - began)
    finally:
        os.killpg(llama.pid, signal.SIGTERM)
        llama.wait(timeout=30)


def _env(home: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OLLAMA_HOST", "TEMPORAL_ADDRESS", "LLM_PROVIDER"):
        env.pop(name, None)
    env.update({"STIGMER_HOME": str(home), "STIGMER_SERVER_PORT": str(ports["api"]),
                "STIGMER_TEMPORAL_PORT": str(ports["temporal"]), "STIGMER_TEMPORAL_UI_PORT": str(ports["ui"]),
                "STIGMER_LLM_BASE_URL": f"http://127.0.0.1:{ports['llm']}/v1"})
    return env


def stigmer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stigmer", *args], env=env, text=True, capture_output=True,
                          timeout=600, check=False)


def stigmer_start(env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = stigmer(env, "local", "start")
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"stigmer local start failed:\n{done.stderr}")
    stop = stigmer(env, "local", "stop")
    if stop.returncode != 0:
        raise SystemExit(f"stigmer local stop failed:\n{stop.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="warm starts and baseline starts to take the median of")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="stigmer-bench-"))
    try:
        ports = {name: free_port() for name in ("api", "temporal", "ui", "llm")}
        env = _env(tmp / "home", ports)
        cold = stigmer_start(env)
        warm = statistics.median(stigmer_start(env) for _ in range(args.runs))
        baseline = statistics.median(bare_temporal(tmp) for _ in range(args.runs))
        model = next((tmp / "home" / "models").glob("*.gguf"))
        servers = statistics.median(bare_temporal_and_llama(tmp, model) for _ in range(args.runs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [("bare temporal start-dev (baseline)", baseline), ("bare temporal + llama.cpp server, by hand", servers),
            ("stigmer local start, cold", cold), ("stigmer local start, warm", warm)]
    print(f"{'scenario':<42} {'seconds':>8} {'x baseline':>11} {'added s':>8}")
    for name, value in rows:
        print(f"{name:<42} {value:>8.2f} {value / baseline:>11.2f} {value - baseline:>8.2f}")
    verdict = "meets" if warm - baseline < 2.0 else "misses"
    print(f"\nwarm start {verdict} the target (stigmer adds < 2 s over the bare dev server): +{warm - baseline:.2f} s;"
          f" over the same servers started by hand: +{warm - servers:.2f} s (API, runner, readiness probes)."
          "\ncold includes assembling the 253 MB model once")


if __name__ == "__main__":
    main()
