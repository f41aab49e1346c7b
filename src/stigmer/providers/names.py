"""Model names: aliases and provider inference. Pure tables, no SDK imports (the CLI uses them).

The provider layer (``registry.py``) owns full resolution; this module is the lightweight part
the configuration layer borrows to know that ``--llm-model claude-sonnet-4-5`` means Anthropic.
"""

from __future__ import annotations

import re

LOCAL_FAMILIES = ("qwen", "llama", "mistral", "mixtral", "gemma", "phi", "deepseek", "codellama", "yi", "solar",
                  "orca", "vicuna", "granite", "smollm")

# The bundled GGUF models' names: served by the embedded llama.cpp server, not by Ollama. The first is the default
# (``config.keys.DEFAULT_MODELS["llamacpp"]`` says the same; a test keeps them equal).
BUNDLED_MODEL = "smollm2-135m"
GEMMA_MODEL = "gemma3-270m"
BUNDLED_MODELS = (BUNDLED_MODEL, GEMMA_MODEL)

# Built-in friendly names -> ``provider:model``. User aliases (``aliases:`` in config.yaml) win over these.
BUILTIN_ALIASES: dict[str, str] = {
    "qwen2.5-coder": "ollama:qwen2.5-coder:7b",
    "llama3.2": "ollama:llama3.2:3b",
    "deepseek-coder": "ollama:deepseek-coder-v2:16b",
    "codellama": "ollama:codellama:13b",
    # The current models (the installed anthropic SDK lists the 5.5 family; 4.5 reaches end of life
    # on 2026-11-30). The versioned names still reach the older models on purpose.
    "sonnet": "anthropic:claude-sonnet-5-5",
    "claude-sonnet": "anthropic:claude-sonnet-5-5",
    "claude-sonnet-4.5": "anthropic:claude-sonnet-4-5-20250929",
    "claude-sonnet-4-5": "anthropic:claude-sonnet-4-5-20250929",
    "haiku": "anthropic:claude-haiku-5-5",
    "claude-haiku-4.5": "anthropic:claude-haiku-4-5-20251001",
    "opus": "anthropic:claude-opus-5-5",
    "claude-opus-4.5": "anthropic:claude-opus-4-5-20251101",
    "gpt-mini": "openai:gpt-5-mini",
    BUNDLED_MODEL: f"llamacpp:{BUNDLED_MODEL}",
    GEMMA_MODEL: f"llamacpp:{GEMMA_MODEL}",
    "embedded": f"llamacpp:{BUNDLED_MODEL}",
}

_OPENAI = re.compile(r"^(gpt-|o1|o3|o4|chatgpt-)", re.IGNORECASE)
_NAME_TAG = re.compile(r"^[a-z0-9][a-z0-9._/-]*:[a-z0-9][a-z0-9._-]*$", re.IGNORECASE)


def infer_provider(name: str) -> str | None:
    """The provider a bare model name implies, or None when the name does not say."""
    lowered = name.strip().lower()
    if lowered in BUILTIN_ALIASES:
        return BUILTIN_ALIASES[lowered].split(":", 1)[0]
    if lowered.endswith(".gguf"):
        return "llamacpp"
    if lowered.startswith("claude"):
        return "anthropic"
    if _OPENAI.match(lowered):
        return "openai"
    if _NAME_TAG.match(lowered):
        return "ollama"
    return "ollama" if family_of(lowered) else None


def family_of(name: str) -> str | None:
    """The local model family a name belongs to (``qwen2.5-coder`` -> ``qwen``), or None."""
    lowered = name.strip().lower()
    family = re.split(r"[^a-z]", lowered, maxsplit=1)[0]
    if family in LOCAL_FAMILIES:
        return family
    return next((f for f in LOCAL_FAMILIES if len(f) > 3 and lowered.startswith(f)), None)


def why_inferred(name: str) -> str:
    """A short human reason for :func:`infer_provider`'s answer (shown by ``stigmer llm resolve``)."""
    lowered = name.strip().lower()
    if lowered.endswith(".gguf"):
        return "a .gguf file: served by the embedded llama.cpp server"
    if lowered.startswith("claude"):
        return "inferred from the 'claude' prefix"
    if _OPENAI.match(lowered):
        return f"inferred from the {_OPENAI.match(lowered).group(1)!r} prefix"  # type: ignore[union-attr]
    if _NAME_TAG.match(lowered):
        return "inferred from the name:tag form (Ollama)"
    family = family_of(lowered)
    return f"inferred from the local model family {family!r} (Ollama)" if family else "not inferable"
