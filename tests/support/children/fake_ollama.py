"""A stand-in for the ``ollama`` binary: ``ollama serve`` answers Ollama's API on ``$OLLAMA_HOST``.

Ollama is not installed here; the daemon's job with it is process handling (start ``ollama serve``
when nothing answers, stop it on ``stigmer local stop``), which only needs a real child that binds
the address Ollama would and answers ``/api/version`` and ``/api/show`` as the published API does.
Tests put a tiny ``ollama`` launcher for this module first on ``PATH``.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def _json(self, status: int, payload: dict[str, object]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/api/version":
            self._json(200, {"version": "0.12.6"})
        else:
            self._json(404, {"error": "404 page not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        model = json.loads(self.rfile.read(length) or b"{}").get("model", "")
        if self.path == "/api/show":
            self._json(200, {"details": {"family": "qwen2"}, "capabilities": ["completion", "tools"], "model": model})
        else:
            self._json(404, {"error": "404 page not found"})

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, flush=True)


def main() -> int:
    if sys.argv[1:] != ["serve"]:
        print("fake ollama: only `ollama serve` is supported", file=sys.stderr)
        return 2
    host, _, port = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434").rpartition(":")
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    print(f"fake ollama listening on {host}:{port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
