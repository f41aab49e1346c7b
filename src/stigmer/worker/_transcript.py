"""Transcripts in the blob store: what model-call activities read instead of conversations sent in full. Activity side.

A transcript is a chain of small JSON manifests, ``{"base": KEY|null, "messages": [...], "dropped": N}``: the
messages a model call was sent after the transcript ``base``. Reading one walks the chain to its root
(``base: null``) and caches the flattened list (an LRU keyed by manifest key: a runner that made the previous
call of an execution reads nothing); every ``FLATTEN_EVERY`` links a manifest is written flat, so a cold read
(another runner, after a crash) is a handful of small reads whatever the length. ``dropped`` is how many of
the oldest tool outputs the context window has already dropped (``_context``), so the prompt's head does not
change from call to call.

Tool outputs over ``INLINE_CHARS`` are blobs of their own: the tool message keeps ``content_ref`` and
``chars`` and a preview; :meth:`Transcripts.contents` loads only those the model is actually sent. Blobs are
namespaced by the workflow id, so they go when the execution or session is deleted.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from ..blobs import BlobStore
from ._context import Memo

INLINE_CHARS = 2048
"""Tool outputs up to this many characters stay in history; longer ones are stored and referred to."""
PREVIEW_CHARS = 400
TAIL_CHARS = 2048
"""A model call stores a transcript only once what no transcript holds yet (its input's messages and its reply)
passes this many characters, or it dropped or summarised something; until then the workflow sends those messages
again with the next call. So a short run stores none, a long one one every few steps, and a call's input stays
about this small (under the codec's 4 KB threshold) whatever the step."""
FLATTEN_EVERY = 32
CACHED = 256
MEMO_KEPT = 8192
"""Messages whose size, dropped note and LangChain form a runner keeps (``_context.Memo``)."""


def preview(text: str, key: str) -> str:
    """What history (and the ``status`` query) shows of a stored output: its start and where the rest is."""
    return f"{text[:PREVIEW_CHARS]}… [{len(text)} characters in all; stored as blob {key[:12]}]"


class Transcripts:
    """Reads and writes transcripts of one runner's executions (see the module docstring)."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.memo = Memo(MEMO_KEPT)
        self._flat: OrderedDict[str, tuple[list[dict[str, Any]], int, int]] = OrderedDict()

    def _remember(self, key: str, messages: list[dict[str, Any]], dropped: int, depth: int) -> None:
        self._flat[key] = (messages, dropped, depth)
        self._flat.move_to_end(key)
        while len(self._flat) > CACHED:
            self._flat.popitem(last=False)

    async def read(self, namespace: str, key: str | None) -> tuple[list[dict[str, Any]], int, int]:
        """``(messages, dropped, depth)`` of the transcript ``key`` (empty for None)."""
        if key is None:
            return [], 0, 0
        hit = self._flat.get(key)
        if hit is not None:
            self._flat.move_to_end(key)
            return hit
        chain: list[dict[str, Any]] = []
        cursor: str | None = key
        base: tuple[list[dict[str, Any]], int, int] = ([], 0, 0)
        while cursor is not None:
            if cursor in self._flat:
                base = self._flat[cursor]
                break
            manifest = json.loads(await self.store.get(namespace, cursor))
            chain.append(manifest)
            cursor = manifest.get("base")
        messages = list(base[0])
        for manifest in reversed(chain):
            messages.extend(manifest["messages"])
        top = chain[0] if chain else {}
        result = (messages, int(top.get("dropped", base[1])), len(chain) + base[2])
        self._remember(key, *result)
        return result

    async def write(self, namespace: str, base: str | None, depth: int, earlier: list[dict[str, Any]],
                    messages: list[dict[str, Any]], dropped: int) -> str:
        """Store ``messages`` after ``base`` (flat, with ``earlier`` in full, every ``FLATTEN_EVERY`` links)."""
        whole = earlier + messages
        if base is not None and depth + 1 >= FLATTEN_EVERY:
            base, depth, messages = None, -1, whole
        # ASCII JSON: a tool output may hold lone surrogates (undecodable bytes), which UTF-8 cannot encode.
        data = json.dumps({"base": base, "messages": messages, "dropped": dropped},
                          separators=(",", ":")).encode("ascii")
        key = await self.store.put(namespace, data)
        self._remember(key, whole, dropped, depth + 1)
        return key

    async def rewrite(self, namespace: str, messages: list[dict[str, Any]]) -> str:
        """Store ``messages`` as a new, flat transcript (after a summary replaced the older turns)."""
        return await self.write(namespace, None, 0, [], messages, 0)

    async def store_output(self, namespace: str, text: str) -> str:
        return await self.store.put(namespace, text.encode("utf-8", "surrogatepass"))

    async def contents(self, namespace: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` with every stored tool output loaded (the ones still referred to after fitting)."""
        out = []
        for m in messages:
            key = m.get("content_ref")
            if key:
                m = {**m, "content": (await self.store.get(namespace, key)).decode("utf-8", "surrogatepass")}
                m.pop("content_ref")
                m.pop("chars", None)
            out.append(m)
        return out
