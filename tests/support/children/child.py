"""A tiny real child process for supervisor tests, with switches.

    python -m tests.support.children.child --port P [--slow-start S] [--fail-on-start]
        [--crash-after S] [--exit-code N] [--ignore-term] [--spawn-grandchild PIDFILE]

It listens on 127.0.0.1:P once "started" (the supervisor's readiness probe is that port),
prints what it does to stdout (the supervisor's log), and can fail before listening, start
slowly, crash after a while, ignore SIGTERM (to exercise SIGKILL), or start a grandchild in
its process group (to check the whole group is stopped).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slow-start", type=float, default=0.0)
    parser.add_argument("--fail-on-start", action="store_true")
    parser.add_argument("--crash-after", type=float, default=None)
    parser.add_argument("--exit-code", type=int, default=3)
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--spawn-grandchild", default=None)
    args = parser.parse_args()
    print(f"child {os.getpid()} starting", flush=True)
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.fail_on_start:
        print("child: failing on start: bad configuration", flush=True)
        return args.exit_code
    time.sleep(args.slow_start)
    if args.spawn_grandchild:
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(args.spawn_grandchild, "w") as handle:
            handle.write(str(grandchild.pid))
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen()
    print(f"child listening on {args.port}", flush=True)
    started = time.monotonic()
    server.settimeout(0.05)
    while args.crash_after is None or time.monotonic() - started < args.crash_after:
        try:
            conn, _ = server.accept()
            conn.close()
        except TimeoutError:
            pass
    print("child: crashing", flush=True)
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main())
