"""CLI start-up: `stigmer --help` and `stigmer config show` against `python -c pass`, in one run.

Usage: python bench/bench_cli.py [--runs N]
Target (issue 2): `stigmer --help` under 150 ms absolute on the 2-core dev machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _time(cmd: list[str], runs: int, env: dict[str, str]) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    stigmer = str(Path(sys.executable).parent / "stigmer")
    if not os.path.exists(stigmer):
        stigmer = shutil.which("stigmer") or "stigmer"
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, STIGMER_HOME=home)
        base = _time([sys.executable, "-c", "pass"], args.runs, env)
        rows = [("python -c pass (baseline)", base)]
        rows.append(("stigmer --help", _time([stigmer, "--help"], args.runs, env)))
        rows.append(("stigmer config show", _time([stigmer, "config", "show"], args.runs, env)))
    print(f"{'command':<28} {'median ms':>10} {'vs baseline':>12}")
    for name, ms in rows:
        print(f"{name:<28} {ms:>10.1f} {ms / base:>11.2f}x")
    help_ms = rows[1][1]
    print(f"\n--help target < 150 ms: {'met' if help_ms < 150 else 'MISSED'} ({help_ms:.0f} ms); runs={args.runs}")


if __name__ == "__main__":
    main()
