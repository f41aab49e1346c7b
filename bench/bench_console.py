"""The web console vs the CLI: time to the first streamed token of one run, watched by both at once (issue 13).

    python bench/bench_console.py [--rounds 9] [--delay 0.0]

A real Temporal dev server, the API on loopback (``create_app``), a real runner (in a thread) on the scripted model
(first token after ``--delay`` seconds, then ~40 tokens). Each round starts one execution, then at once: the CLI's
own client (``stigmer.cli._client.Client.events``, what ``stigmer run`` reads) follows its stream in a thread, and a
headless chromium (Debian's, through Playwright; already logged in) opens the run's console page. Measured from the
start request: the first ``token`` event reaching the CLI's client (baseline), the console page loaded
(``DOMContentLoaded``), and the first token shown in the page (its counter ``data-tokens`` set). The ratio compares
the first token; no target in the issue: it asks for the number.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def _import_path() -> None:
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before the model's first token")
    args = parser.parse_args(argv)
    _import_path()
    import httpx
    from tests.support.console import launched, open_console
    from tests.support.daemon_api import WorkerThread, make_context, real_client, scripted_config, serve_api
    from tests.support.scripted_provider import PLUGIN, write_script
    from tests.support.temporal import start_temporal

    from stigmer.cli._client import Client

    tmp = Path(tempfile.mkdtemp(prefix="stigmer-bench-console-"))
    home = tmp / "home"
    home.mkdir()
    os.environ.update({"STIGMER_HOME": str(home), "STIGMER_PLUGINS": PLUGIN})
    answer = " ".join(f"word{i}" for i in range(40))
    script = write_script(tmp / "answer.json", [{"content": answer, "delay": args.delay}], record=False)
    temporal = start_temporal(log=tmp / "temporal.log")
    rows: list[dict[str, float]] = []
    try:
        cfg = scripted_config(home, temporal.address, STIGMER_RUNNER_TASK_QUEUE="bench-console")
        with serve_api(make_context(cfg, real_client(cfg))) as api:
            os.environ.update({"STIGMER_SERVER_URL": api.url, "STIGMER_SERVER_TOKEN": api.runner_token})
            agent = {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "bench"},
                     "spec": {"instructions": "Be brief.", "model": f"scripted:{script}"}}
            with WorkerThread(cfg), httpx.Client(base_url=api.url, headers=api.headers(), timeout=60) as http, \
                    launched() as browser:
                http.post("/v1/apply", json={"documents": [agent]}).raise_for_status()
                page = open_console(browser, api.url, api.token)
                for round_ in range(args.rounds + 1):  # the first round warms the runner and the page: not counted
                    began = time.perf_counter()
                    execution_id = http.post("/v1/executions", json={"agent": "bench", "message": "go"}).json()["id"]
                    cli: dict[str, float] = {}

                    def follow(eid: str = execution_id, seen: dict[str, float] = cli, t0: float = began) -> None:
                        with Client(api.url, api.token) as client:
                            for event in client.events(eid):
                                if event["type"] == "token" and "first" not in seen:
                                    seen["first"] = time.perf_counter() - t0

                    thread = threading.Thread(target=follow, daemon=True)
                    thread.start()
                    page.goto(f"{api.url}/console/#/executions/{execution_id}", wait_until="domcontentloaded")
                    loaded = time.perf_counter() - began
                    page.wait_for_selector("[data-tokens]", timeout=60_000)
                    shown = time.perf_counter() - began
                    page.wait_for_selector("#final", timeout=60_000)
                    thread.join(timeout=60)
                    if round_:
                        rows.append({"cli": cli["first"] * 1000, "loaded": loaded * 1000, "page": shown * 1000})
                    page.goto("about:blank")
    finally:
        temporal.stop()
    print(table(rows, args.delay))
    return 0


def table(rows: list[dict[str, Any]], delay: float) -> str:
    def cell(key: str) -> str:
        values = [r[key] for r in rows]
        return f"{statistics.median(values):.0f} | {min(values):.0f}-{max(values):.0f}"

    cli, page = statistics.median(r["cli"] for r in rows), statistics.median(r["page"] for r in rows)
    return "\n".join([
        f"model's first token after {delay:.1f} s; {len(rows)} rounds; ms from the start request",
        "", "| measured | median ms | min-max |", "| --- | --- | --- |",
        f"| first token at the CLI's client (baseline) | {cell('cli')} |",
        f"| console page loaded (DOMContentLoaded) | {cell('loaded')} |",
        f"| first token shown in the console page | {cell('page')} |",
        f"| ratio console / CLI, first token | {page / cli:.2f}x | |"])


if __name__ == "__main__":
    raise SystemExit(main())
