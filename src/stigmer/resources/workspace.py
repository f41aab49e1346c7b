"""Which directories an agent may work in: the one rule for ``spec.workspace``, ``--workspace`` and the API.

The workspace tools can read, write and (with ``shell``) run anything inside the workspace, so the
workspace itself must not be a place whose contents matter to the system or to stigmer:

- a relative workspace lives under ``$STIGMER_HOME/workspaces/`` and may not climb out of it
  (``..``, or a symlink pointing elsewhere), nor be ``workspaces/`` itself (every agent's files);
- an absolute one (``~/`` expands to the user's home) may not be ``/``, nor contain the user's home
  or the stigmer home (``$HOME`` itself, ``/home``), nor lie inside the stigmer home outside
  ``workspaces/`` (``run/token``, ``config.yaml``, the database), nor lie in a system directory
  (:data:`SYSTEM_DIRS`) unless it is inside the user's own home (CI runs as root, with ``/root/project``),
  nor be a shared top-level directory itself (:data:`SHARED_DIRS`: ``/tmp``, but ``/tmp/job`` is fine);
- the checks are made on the real path (symlinks resolved), so a link to ``/etc`` is ``/etc``.

Whether the directory must exist is the caller's choice: at apply it need not (the agent may be
applied before its directory is made), at run an absolute one must.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from ..errors import UserError

# Directories of the operating system, refused with everything below them.
SYSTEM_DIRS: Final = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
                      "/run", "/sbin", "/sys", "/usr", "/var")
# Top-level directories shared by every user and program: refused themselves, allowed below (/tmp/job, /srv/site).
SHARED_DIRS: Final = ("/home", "/media", "/mnt", "/opt", "/srv", "/tmp")
# A "home" that is one of these grants nothing: HOME=/ or HOME=/etc must not open the system (root's /root may).
_NOT_A_HOME: Final = frozenset(Path(p) for p in ("/", *SYSTEM_DIRS) if p != "/root")
MAX_PATH: Final = 4096
MAX_NAME: Final = 255
HINT: Final = ("use a project directory of your own (for example under your home), or a relative name, "
               "which lives under $STIGMER_HOME/workspaces/")


class WorkspaceRefused(ValueError):
    """Why a workspace is refused (the message names no field: the caller adds it)."""


def _inside(path: Path, root: Path) -> bool:
    """True when ``path`` is ``root`` or below it."""
    return path == root or root in path.parents


def _real(path: Path) -> Path:
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError) as exc:  # symlink loops on some Pythons; a NUL byte
        raise WorkspaceRefused(f"cannot resolve {str(path)!r}: {exc}") from None


def _check_text(raw: str) -> None:
    if not raw.strip():
        raise WorkspaceRefused("is empty: name a directory")
    if "\x00" in raw:
        raise WorkspaceRefused("contains a NUL byte")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise WorkspaceRefused("is not valid Unicode text (it holds a lone surrogate)") from None
    if len(raw) > MAX_PATH or any(len(part.encode()) > MAX_NAME for part in Path(raw).parts):
        raise WorkspaceRefused(f"is too long (at most {MAX_PATH} characters, {MAX_NAME} bytes per name)")


def _expand(raw: str, user_home: Path) -> Path:
    if raw == "~" or raw.startswith("~/"):
        return user_home / raw[2:]
    return Path(os.path.expanduser(raw))


def _check_absolute(real: Path, shown: str, stigmer_home: Path, user_home: Path) -> None:
    workspaces = stigmer_home / "workspaces"
    if real == Path("/"):
        raise WorkspaceRefused(f"{shown!r} is the root directory")
    if _inside(user_home, real):
        what = "is your home directory" if real == user_home else f"contains your home directory ({user_home})"
        raise WorkspaceRefused(f"{shown!r} {what}")
    if _inside(stigmer_home, real):
        what = "is" if real == stigmer_home else "contains"
        raise WorkspaceRefused(f"{shown!r} {what} the stigmer home ({stigmer_home}), which holds its token, "
                               "config and data")
    if _inside(real, stigmer_home):
        if real != workspaces and _inside(real, workspaces):
            return  # a stigmer workspace, wherever the stigmer home is (/var/lib/stigmer for a service)
        raise WorkspaceRefused(f"{shown!r} is inside the stigmer home ({stigmer_home}), which holds its token, "
                               f"config and data; only directories inside {workspaces} may be workspaces")
    if _inside(real, user_home) and user_home not in _NOT_A_HOME:
        return  # the user's own files: /root/project when the user is root
    system = next((d for d in SYSTEM_DIRS if _inside(real, Path(d))), None) or next(
        (d for d in SYSTEM_DIRS if _inside(real, _real(Path(d)))), None)  # /lib may be a link to /usr/lib
    if system is not None:
        raise WorkspaceRefused(f"{shown!r} is in the system directory {system}")
    if str(real) in SHARED_DIRS:
        raise WorkspaceRefused(f"{shown!r} is the shared directory {real}; use a directory inside it")


def workspace_path(raw: str, *, stigmer_home: Path, user_home: Path, must_exist: bool = True) -> Path:
    """The real, checked directory ``raw`` names; :class:`WorkspaceRefused` saying why when it may not be used.

    Args:
        raw: what the person wrote: relative (under ``stigmer_home/workspaces``), absolute, or ``~/...``.
        stigmer_home: ``$STIGMER_HOME`` (its ``workspaces/`` subtree is the only part a workspace may be in).
        user_home: the user's home directory (itself refused; inside it, system-directory rules do not apply).
        must_exist: an absolute directory must exist (a relative one is the caller's to create).
    """
    _check_text(raw)
    stigmer_home, user_home = _real(stigmer_home), _real(user_home)
    expanded = _expand(raw, user_home)
    if not expanded.is_absolute():
        base = stigmer_home / "workspaces"
        real = _real(base / expanded)
        if real == base or not _inside(real, base):
            raise WorkspaceRefused(f"{raw!r} leaves {base}: a relative workspace must stay inside it "
                                   "(no '..' out of it, no symlink pointing elsewhere)")
        return real
    real = _real(expanded)
    _check_absolute(real, raw, stigmer_home, user_home)
    if must_exist and not real.is_dir():
        raise WorkspaceRefused(f"{raw!r} " + ("is not a directory" if real.exists() else "does not exist")
                               + "; create it first, or use a relative name under $STIGMER_HOME/workspaces/")
    return real


def resolve_workspace(raw: str, *, stigmer_home: Path, user_home: Path, field: str, must_exist: bool = True) -> Path:
    """:func:`workspace_path`, with a refusal as a :class:`UserError` naming ``field`` (``--workspace``,
    ``body.workspace``, ``spec.workspace``) and what to do instead."""
    try:
        return workspace_path(raw, stigmer_home=stigmer_home, user_home=user_home, must_exist=must_exist)
    except WorkspaceRefused as exc:
        raise UserError(f"{field}: {exc}", hint=HINT) from None


def user_home() -> Path:
    """This process's home directory (``HOME``, else the password database); ``/`` when it has none, which
    grants nothing (a home of ``/`` is never a reason to allow a path)."""
    try:
        return Path.home()
    except (RuntimeError, KeyError):
        return Path("/")


def default_homes() -> tuple[Path, Path]:
    """``(stigmer home, user home)`` of this process, from its environment (``STIGMER_HOME``, ``HOME``)."""
    from ..config.resolve import default_home

    return default_home(os.environ), user_home()
