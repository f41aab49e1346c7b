"""The shell tool's sandbox: ``bash -c COMMAND`` where stigmer's home and other processes cannot be seen.

Run by the runner as ``python -I -S _sandbox.py --workspace W [--hide PATH]... -- COMMAND`` (a script
of the standard library only, started by path, so it needs neither stigmer nor site-packages), never
as a ``preexec_fn``: the runner has threads, and forking a threaded process into namespace work is
unsafe. The helper:

1. ``unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID)`` and maps the caller's uid/gid to themselves
   (``setgroups`` denied): no privilege is gained, the command still runs as the user;
2. forks: the child is PID 1 of a new PID namespace (when it exits, every process the command left
   behind dies with it); the parent waits and exits with the child's code, and the child dies if the
   parent does (``PR_SET_PDEATHSIG``), so the runner's kill of the process group ends everything;
3. in the child: makes every mount private, mounts a fresh ``/proc`` (only the sandbox's own
   processes are listed, so no other process's ``/proc/PID/environ``), mounts an empty tmpfs over
   each hidden directory (``$STIGMER_HOME``: ``run/token``, ``config.yaml``, ``secrets.json``, the
   database) and ``/dev/null`` over each hidden file, then binds the workspace back in when it lay
   under a hidden directory;
4. drops every capability (bounding set, effective/permitted/inheritable) and sets ``no_new_privs``,
   so the command can neither unmount the tmpfs nor mount anything, chdirs to the workspace and
   execs ``bash -c COMMAND`` with the environment it was given (the runner's scrubbed one).

Where user namespaces are refused (a container's seccomp profile, Ubuntu's AppArmor restriction of
unprivileged user namespaces, ``user.max_user_namespaces = 0``) the helper exits with
:data:`UNAVAILABLE` and a line starting with :data:`MARK`, before running anything; the runner then
runs the command unsandboxed (scrubbed environment only) and logs why, once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

MARK = "stigmer-sandbox:"
UNAVAILABLE = 125
"""Exit code of a helper that could not build the sandbox (nothing of the command ran)."""

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
_CAPABILITY_VERSION_3 = 0x20080522


def argv(workspace: str, hidden: Sequence[str], command: str, *, probe: bool = False) -> list[str]:
    """The helper's command line (the command is the model's text, like ``bash -c``'s; no secret)."""
    hides = [part for path in hidden for part in ("--hide", path)]
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), "--workspace", workspace, *hides,
            *(["--probe"] if probe else []), "--", command]


# --- the helper itself (runs in its own process) ---------------------------------------------------------

_LIBC: list[ctypes.CDLL] = []


def _libc() -> ctypes.CDLL:
    """The C library, typed for the calls below (loaded when the helper runs: importing this costs nothing)."""
    if not _LIBC:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _LIBC.append(libc)
    return _LIBC[0]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def raw(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    _check(_libc().mount(raw(source), raw(target), raw(fstype), flags, raw(data)), f"mount on {target}")


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)


def _enter_namespaces() -> None:
    uid, gid = os.getuid(), os.getgid()
    _check(_libc().unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _hide(workspace: str, hidden: Sequence[str]) -> None:
    """Cover each hidden path (tmpfs on a directory, /dev/null on a file); keep the workspace visible."""
    covered = [path for path in hidden if os.path.isdir(path) and _inside(workspace, path)]
    keep = os.open(workspace, os.O_PATH | os.O_DIRECTORY) if covered else None
    for path in hidden:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=1m")
        elif os.path.exists(path):
            _mount("/dev/null", path, None, MS_BIND)
    if keep is not None:
        os.makedirs(workspace, exist_ok=True)  # in the tmpfs: the mount point for the real workspace
        _mount(f"/proc/self/fd/{keep}", workspace, None, MS_BIND | MS_REC)
        os.close(keep)


def _drop_privileges() -> None:
    """No capability left, none to be had from an exec: the mounts above cannot be undone from inside."""
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as handle:
        last = int(handle.read())
    for cap in range(last + 1):
        _check(_libc().prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "dropping the capability bounding set")
    _check(_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_libc().capset(header, data), "capset")


def _child(workspace: str, hidden: Sequence[str], command: str, probe: bool) -> None:
    _check(_libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    notes = []
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as exc:  # e.g. a container that masks parts of /proc: other processes stay listed
        notes.append(f"no private /proc ({exc.strerror}); other processes' environments are protected only "
                     "by their own non-dumpable flag")
    _hide(workspace, hidden)
    _drop_privileges()
    os.chdir(workspace)
    if probe:
        print("\n".join(notes), flush=True)
        os._exit(0)
    os.execvpe("bash", ["bash", "-c", command], dict(os.environ))


def _parse(args: list[str]) -> tuple[str, list[str], str, bool]:
    workspace, hidden, probe = "/", [], False
    while args and args[0] != "--":
        flag = args.pop(0)
        if flag == "--probe":
            probe = True
        elif flag in ("--workspace", "--hide") and args:
            value = args.pop(0)
            if flag == "--workspace":
                workspace = value
            else:
                hidden.append(value)
        else:
            raise SystemExit(f"{MARK} unknown argument {flag!r}")
    if len(args) != 2:
        raise SystemExit(f"{MARK} expected `-- COMMAND` last")
    return workspace, hidden, args[1], probe


def _fail(exc: BaseException) -> None:
    os.write(2, f"{MARK} {exc}\n".encode(errors="replace"))
    os._exit(UNAVAILABLE)


def main(args: list[str]) -> None:
    """Build the sandbox and run the command in it; exit with its code (or UNAVAILABLE, having run nothing)."""
    workspace, hidden, command, probe = _parse(args)
    try:
        _enter_namespaces()
        pid = os.fork()
    except Exception as exc:  # OSError, or no such call on this system (not Linux): nothing ran
        _fail(exc)
    if pid == 0:
        try:
            _child(workspace, hidden, command, probe)
        except BaseException as exc:
            _fail(exc)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main(sys.argv[1:])
