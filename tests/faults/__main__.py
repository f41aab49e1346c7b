"""``python -m tests.faults --seed N --executions N [--short] [--home DIR]``: run the crash-fault suite once.

``--sessions N`` runs the sessions and approvals version instead: N sessions of ``--turns`` turns, ``--approvals``
of them asking for a decision, ``--kills`` faults around the approvals and turn boundaries.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from . import sessions
from .suite import SHORT_EXECUTIONS, SHORT_KILLS, run_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--seed", type=int, default=7, help="seed of the fault plan (same seed, same plan)")
    parser.add_argument("--executions", type=int, default=None, help="executions to run (default 20, short 6)")
    parser.add_argument("--kills", type=int, default=None,
                        help="faults to inject (default executions/3, short 3; sessions: turns/2 each, short 4)")
    parser.add_argument("--short", action="store_true", help="the CI version: few executions, three kills")
    parser.add_argument("--sessions", type=int, default=None,
                        help="run the sessions and approvals suite with this many sessions (short: 1)")
    parser.add_argument("--turns", type=int, default=None, help="turns per session (default 6, short 3)")
    parser.add_argument("--approvals", type=int, default=None,
                        help="turns per session that ask for approval (default turns/2, short 2)")
    parser.add_argument("--home", type=Path, default=None, help="STIGMER_HOME to use (default: a fresh temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stigmer-faults-") as tmp:
        home = args.home or Path(tmp) / "home"
        home.mkdir(parents=True, exist_ok=True)
        if args.sessions is not None:
            report: sessions.SessionReport | object = _sessions(args, home)
        else:
            executions = args.executions or (SHORT_EXECUTIONS if args.short else 20)
            kills = args.kills or (SHORT_KILLS if args.short else max(3, executions // 3))
            report = run_suite(home, seed=args.seed, executions=executions, kills=kills, log=sys.stderr)
    print(report.table())  # type: ignore[attr-defined]
    return 0 if report.ok else 1  # type: ignore[attr-defined]


def _sessions(args: argparse.Namespace, home: Path) -> sessions.SessionReport:
    turns = args.turns or (sessions.SHORT_TURNS if args.short else 6)
    approvals = args.approvals if args.approvals is not None else (
        sessions.SHORT_APPROVALS if args.short else max(2, turns // 2))
    kills = args.kills or (sessions.SHORT_KILLS if args.short else max(4, (args.sessions or 1) * turns // 2))
    count = args.sessions or sessions.SHORT_SESSIONS
    return sessions.run_session_suite(home, seed=args.seed, sessions=count, turns=turns, approvals=approvals,
                                      kills=kills, log=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
