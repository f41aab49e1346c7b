"""``Conversation``: the messages of an execution or session as workflow code holds them. Deterministic, no I/O.

Since conversations went by reference (``by_ref``, set by the input of every execution and session started
since), a conversation is a reference plus a short tail: ``ref`` names the
transcript the model-call activity last stored (its messages up to and including the ones it was sent),
``tail`` holds what came after (the model's reply and the tool results it asked for). A model call receives
``ref`` and ``tail``, never the whole text, and returns the new ``ref``: each step adds the same few bytes to
history, whatever the step number. Tool outputs larger than a few KB are not in the tail either: the tool
activity stores them and the tool message carries ``content_ref`` with a short preview.

Histories recorded before replay with ``by_ref`` false (their inputs have no such field): the tail is then the
whole conversation and every model call is sent all of it, as it was. The switch is a field of the input, not a
``workflow.patched`` marker: a marker (and the search-attribute upsert the SDK sends with it) on every execution
cost the Temporal server ~5 ms of CPU each (bench/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LOG_KEPT = 500
"""Messages the ``status`` query shows (the most recent; a long run's transcript is in the blob store)."""


@dataclass
class Conversation:
    by_ref: bool
    ref: str | None = None
    tail: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, instructions: str, by_ref: bool) -> Conversation:
        conv = cls(by_ref)
        conv.add({"role": "system", "content": instructions})
        return conv

    @classmethod
    def carried(cls, data: dict[str, Any]) -> Conversation:
        """A conversation as :meth:`carry` wrote it (a continue-as-new input)."""
        return cls(bool(data.get("by_ref", True)), data.get("ref"), list(data.get("tail") or []),
                   int(data.get("count", 0)))

    @classmethod
    def of_messages(cls, messages: list[dict[str, Any]], by_ref: bool) -> Conversation:
        """A conversation whose messages are all in hand (a session carried over by code before references)."""
        conv = cls(by_ref)
        for m in messages:
            conv.add(m)
        return conv

    def carry(self) -> dict[str, Any]:
        return {"by_ref": self.by_ref, "ref": self.ref, "tail": list(self.tail), "count": self.count}

    def add(self, message: dict[str, Any]) -> None:
        self.tail.append(message)
        self.count += 1
        self.log.append(message)
        if len(self.log) > LOG_KEPT:
            del self.log[:len(self.log) - LOG_KEPT]

    def committed(self, ref: str | None) -> None:
        """The model call stored everything up to now under ``ref``: the tail starts afresh."""
        if self.by_ref and ref:
            self.ref = ref
            self.tail = []

    def last_assistant_and_after(self) -> list[dict[str, Any]]:
        """The last assistant message and the tool results after it (all in the tail, in both modes)."""
        for i in range(len(self.tail) - 1, -1, -1):
            if self.tail[i].get("role") == "assistant":
                return self.tail[i:]
        return []
