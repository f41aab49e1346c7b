"""Run every benchmark in this folder, one after the other, and print their tables.

Usage: python bench/run_all.py [NAME ...]   (names like ``cli``, ``providers``, ``runner``, ``local``, ``sessions``,
``long_runs``)
Each benchmark measures its own baseline in the same run and prints the ratio.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    wanted = set(sys.argv[1:])
    scripts = sorted(p for p in here.glob("bench_*.py") if not wanted or p.stem.removeprefix("bench_") in wanted)
    print(f"# machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d')}\n")
    failed = 0
    for script in scripts:
        print(f"## {script.name}\n", flush=True)
        result = subprocess.run([sys.executable, str(script)], cwd=here.parent, check=False)
        failed += result.returncode != 0
        print(flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
