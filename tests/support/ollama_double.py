"""A protocol double of the Ollama server: a small real HTTP server on loopback.

Ollama cannot run here, so this follows its published API (github.com/ollama/ollama
``docs/api.md``) closely enough for the real ``ChatOllama`` and stigmer's own client:
``GET /api/version``, ``GET /api/tags``, ``POST /api/show`` (capabilities, ``model_info``),
``POST /api/pull`` (streamed NDJSON progress), ``POST /api/chat`` (streamed NDJSON, tool calls,
"model ... not found, try pulling it first" as 404, "... does not support tools" as 400, and ``format``: a
request with a JSON schema there gets a reply that is JSON, as a model decoded under that schema writes it: an
emulated tool call (``{"tool", "arguments"}``, the model's ``tool_call``) until the conversation holds a tool's
result, then ``{"answer": reply}``).
Failures (429/500/reset/stall) are injected through :class:`HttpDouble`'s methods.

    double = start_ollama_double()
    double.add_model("llama3.2:3b", tools=True, reply="Hello there")
    ... ChatOllama(base_url=double.url, model="llama3.2:3b") ...
    double.stop()
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from .http_double import HttpDouble, Request

VERSION = "0.12.6"


@dataclass
class FakeModel:
    """A model the double "has"."""

    name: str
    tools: bool = True
    context_length: int = 32768
    size: int = 4_683_087_332
    reply: str = "Hello from the Ollama double."
    tool_call: dict[str, Any] | None = None
    """``{"name": ..., "arguments": {...}}`` answered when the request offers tools."""
    family: str = "qwen2"
    done_reason: str = "stop"
    """The final chunk's ``done_reason``: ``"length"`` when a reply is cut at ``num_predict``."""
    prompt_eval_count: int | None = 10
    """The final chunk's prompt token count; None leaves it out, as Ollama may for a prompt it had cached."""
    eval_count: int | None = None
    """The final chunk's reply token count; None: one per streamed piece of the reply (a few for a tool call)."""


@dataclass
class OllamaDouble(HttpDouble):
    models: dict[str, FakeModel] = field(default_factory=dict)
    pullable: dict[str, FakeModel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        HttpDouble.__init__(self)

    def add_model(self, name: str, **kwargs: Any) -> FakeModel:
        model = FakeModel(name=name, **kwargs)
        self.models[name] = model
        return model

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path == "/api/chat"]

    def route(self, request: Request) -> None:
        handlers = {"/api/version": self._version, "/api/tags": self._tags, "/api/show": self._show,
                    "/api/pull": self._pull, "/api/chat": self._chat}
        handler = handlers.get(request.path)
        if handler is None:
            request.json(404, {"error": "404 page not found"})
            return
        handler(request)

    def _version(self, request: Request) -> None:
        request.json(200, {"version": VERSION})

    def _tags(self, request: Request) -> None:
        models = [{"name": m.name, "model": m.name, "modified_at": "2026-01-01T00:00:00Z", "size": m.size,
                   "digest": "sha256:" + "0" * 64,
                   "details": {"format": "gguf", "family": m.family, "parameter_size": "7.6B",
                               "quantization_level": "Q4_K_M"}} for m in self.models.values()]
        request.json(200, {"models": models})

    def _find(self, request: Request) -> FakeModel | None:
        name = str((request.body or {}).get("model") or (request.body or {}).get("name") or "")
        return self.models.get(name) or self.models.get(f"{name}:latest")

    def _show(self, request: Request) -> None:
        model = self._find(request)
        if model is None:
            request.json(404, {"error": f"model '{request.body.get('model')}' not found"})
            return
        caps = ["completion", "tools"] if model.tools else ["completion"]
        template = "{{ if .Tools }}tools{{ end }}{{ .Prompt }}" if model.tools else "{{ .Prompt }}"
        request.json(200, {"modelfile": "", "parameters": "", "template": template,
                           "details": {"family": model.family, "format": "gguf"},
                           "model_info": {"general.architecture": model.family,
                                          f"{model.family}.context_length": model.context_length},
                           "capabilities": caps})

    def _pull(self, request: Request) -> None:
        name = str(request.body.get("model") or request.body.get("name"))
        request.start_stream("application/x-ndjson")
        model = self.pullable.get(name)
        if model is None:
            request.write(json.dumps({"status": "pulling manifest"}) + "\n")
            request.write(json.dumps({"error": "pull model manifest: file does not exist"}) + "\n")
            return
        total = model.size
        request.write(json.dumps({"status": "pulling manifest"}) + "\n")
        for done in (0, total // 4, total // 2, total):
            request.write(json.dumps({"status": "pulling " + "a" * 12, "digest": "sha256:" + "a" * 64,
                                      "total": total, "completed": done}) + "\n")
        for status in ("verifying sha256 digest", "writing manifest", "success"):
            request.write(json.dumps({"status": status}) + "\n")
        self.models[name] = model

    def _chat(self, request: Request) -> None:
        body = request.body or {}
        model = self._find(request)
        if model is None:
            request.json(404, {"error": f"model \"{body.get('model')}\" not found, try pulling it first"})
            return
        if body.get("tools") and not model.tools:
            request.json(400, {"error": f"registry.ollama.ai/library/{model.name} does not support tools"})
            return
        message: dict[str, Any] = {"role": "assistant", "content": ""}
        chunks = [] if body.get("tools") and model.tool_call else _words(_formatted(model, body))
        if body.get("tools") and model.tool_call:
            message["tool_calls"] = [{"function": dict(model.tool_call)}]
        pieces = len(chunks) + (len(json.dumps(model.tool_call).split()) if "tool_calls" in message else 0)
        if body.get("stream", True) is False:
            request.json(200, _final(model, {**message, "content": "".join(chunks)}, pieces))
            return
        request.start_stream("application/x-ndjson")
        for word in chunks:
            request.write(json.dumps({"model": model.name, "created_at": _now(),
                                      "message": {"role": "assistant", "content": word}, "done": False}) + "\n")
        if "tool_calls" in message:
            request.write(json.dumps({"model": model.name, "created_at": _now(), "message": message,
                                      "done": False}) + "\n")
        request.write(json.dumps(_final(model, {"role": "assistant", "content": ""}, pieces)) + "\n")


def _formatted(model: FakeModel, body: dict[str, Any]) -> str:
    """The reply text: plain, or JSON when the request constrains it with ``format`` (a schema, or ``"json"``)."""
    if not body.get("format"):
        return model.reply
    answered = any(str(m.get("content", "")).startswith("Result of ") for m in body.get("messages") or [])
    if model.tool_call and not answered:
        return json.dumps({"tool": model.tool_call["name"], "arguments": model.tool_call.get("arguments", {})})
    return json.dumps({"answer": model.reply})


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _final(model: FakeModel, message: dict[str, Any], pieces: int) -> dict[str, Any]:
    """The last chunk of a reply: ``done``, its reason, and the timings and token counts Ollama reports."""
    final = {"model": model.name, "created_at": _now(), "message": message, "done": True,
             "done_reason": model.done_reason, "total_duration": 1_000_000, "load_duration": 1000,
             "prompt_eval_count": model.prompt_eval_count, "prompt_eval_duration": 1000,
             "eval_count": pieces if model.eval_count is None else model.eval_count, "eval_duration": 1000}
    return {k: v for k, v in final.items() if v is not None}


def start_ollama_double() -> OllamaDouble:
    """Start the double on a free loopback port; its ``url`` is what ``OLLAMA_HOST`` would be."""
    return OllamaDouble()
