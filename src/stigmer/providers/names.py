"""Model names: aliases and provider inference. Pure tables, no SDK imports (the CLI uses them).

The provider layer (``registry.py``) owns full resolution; this module is the lightweight part
the configuration layer borrows to know that ``--llm-model claude-sonnet-4-5`` means Anthropic.
"""

from __future__ import annotations

import re

LOCAL_FAMILIES = ("qwen", "llama", "mistral", "mixtral", "gemma", "phi", "deepseek", "codellama", "yi", "solar",
                  "orca", "vicuna", "granite", "smollm")

_OPENAI = re.compile(r"^(gpt-|o1|o3|o4|chatgpt-)", re.IGNORECASE)
_NAME_TAG = re.compile(r"^[a-z0-9][a-z0-9._/-]*:[a-z0-9][a-z0-9._-]*$", re.IGNORECASE)


def infer_provider(name: str) -> str | None:
    """The provider a bare model name implies, or None when the name does not say."""
    lowered = name.strip().lower()
    if lowered.endswith(".gguf"):
        return "llamacpp"
    if lowered.startswith("claude"):
        return "anthropic"
    if _OPENAI.match(lowered):
        return "openai"
    if _NAME_TAG.match(lowered):
        return "ollama"
    family = re.split(r"[^a-z]", lowered, maxsplit=1)[0]
    if family in LOCAL_FAMILIES or any(lowered.startswith(f) for f in LOCAL_FAMILIES if len(f) > 3):
        return "ollama"
    return None
