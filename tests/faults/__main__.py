"""``python -m tests.faults --seed N --executions N [--short] [--home DIR]``: run the crash-fault suite once."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .suite import SHORT_EXECUTIONS, SHORT_KILLS, run_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--seed", type=int, default=7, help="seed of the fault plan (same seed, same plan)")
    parser.add_argument("--executions", type=int, default=None, help="executions to run (default 20, short 6)")
    parser.add_argument("--kills", type=int, default=None, help="faults to inject (default executions/3, short 3)")
    parser.add_argument("--short", action="store_true", help="the CI version: few executions, three kills")
    parser.add_argument("--home", type=Path, default=None, help="STIGMER_HOME to use (default: a fresh temp dir)")
    args = parser.parse_args(argv)
    executions = args.executions or (SHORT_EXECUTIONS if args.short else 20)
    kills = args.kills or (SHORT_KILLS if args.short else max(3, executions // 3))
    with tempfile.TemporaryDirectory(prefix="stigmer-faults-") as tmp:
        home = args.home or Path(tmp) / "home"
        home.mkdir(parents=True, exist_ok=True)
        report = run_suite(home, seed=args.seed, executions=executions, kills=kills, log=sys.stderr)
    print(report.table())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
