"""Parent-side process plumbing: the private uid, the mount plan, and killing a process tree."""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import stat
import sys
import sysconfig
import time
from collections.abc import Iterable
from pathlib import Path

from muse_sdk.errors import SandboxError

__all__ = ["SandboxError", "kill_tree", "pick_uid", "python_paths", "strays", "unmask_plan"]

#: Private uids are drawn from here: above the ranges distributions, systemd and container
#: tools hand out, below 2**31.
UID_BASE = 0x7000_0000
UID_SPAN = 1 << 24
LINUX = sys.platform.startswith("linux")


def _id_map(kind: str) -> list[tuple[int, int]]:
    try:
        text = Path(f"/proc/self/{kind}_map").read_text(encoding="ascii")
    except OSError:
        return [(0, 2**32 - 1)]  # no user namespaces (macOS): every id is usable
    return [(int(line.split()[0]), int(line.split()[2])) for line in text.splitlines() if line]


def pick_uid() -> int:
    """A random unprivileged uid (also used as gid) that this user namespace maps."""
    window = (UID_BASE, UID_BASE + UID_SPAN)
    for start, count in _id_map("uid"):
        gid_ok = any(s <= window[0] and window[1] <= s + c for s, c in _id_map("gid"))
        if start <= window[0] and window[1] <= start + count and gid_ok:
            return UID_BASE + secrets.randbelow(UID_SPAN)
    # A container mapping few ids: the upper half of its largest range.
    start, count = max(_id_map("uid"), key=lambda extent: extent[1])
    low, high = max(start + count // 2, 1000), start + count - 2
    if high <= low:
        raise SandboxError(
            "the sandbox runs code as a private unprivileged uid when muse runs as root, but this "
            "user namespace maps too few uids: run muse as a non-root user"
        )
    return low + secrets.randbelow(high - low)


@functools.cache
def python_paths() -> tuple[str, ...]:
    """The interpreter's directories that the code may import from."""
    paths = sysconfig.get_paths()
    found = [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    found.append(os.path.dirname(os.path.realpath(sys.executable)))
    return tuple(dict.fromkeys(os.path.realpath(path) for path in found))


def _others_may_enter(path: str) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IXOTH)
    except OSError:
        return True  # missing: nothing to expose


def unmask_plan(paths: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Directories others cannot enter on the way to ``paths``, each with the children to expose.

    The child mounts a tmpfs over each such directory (in its own mount namespace) holding only
    those children, so the private uid reaches the interpreter without seeing the rest.
    """
    plan: dict[str, list[str]] = {}
    for path in paths:
        parts = Path(os.path.realpath(path)).parts
        for depth in range(1, len(parts)):
            parent, child = os.path.join(*parts[:depth]), os.path.join(*parts[: depth + 1])
            if _others_may_enter(parent):
                continue
            blocked = [
                os.path.join(*parts[:below])
                for below in range(depth + 1, len(parts))
                if not _others_may_enter(os.path.join(*parts[:below]))
            ]
            if blocked or not LINUX:
                closed = blocked[0] if blocked else parent
                raise SandboxError(
                    f"the sandbox runs code as an unprivileged user, who cannot enter {closed} "
                    f"(on the way to {path}): make it enterable (chmod o+x {closed}) or run muse "
                    "as a non-root user"
                )
            if child not in plan.setdefault(parent, []):
                plan[parent].append(child)
            break
    return list(plan.items())


def _status(pid: str) -> tuple[int, int, str] | None:
    """``(uid, session id, state)`` of a process, or ``None`` when it is gone."""
    uid = sid = -1
    state = ""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key == "State":
                    state = value.split()[0]
                elif key == "Uid":
                    uid = int(value.split()[0])
                elif key == "NSsid":
                    sid = int(value.split()[-1])
                    break
    except (OSError, ValueError, IndexError):
        return None
    return uid, sid, state


def strays(uid: int | None, sid: int) -> list[int]:
    """Live (not zombie) processes of the run: its private uid's, or its session's (Linux)."""
    if not LINUX:
        return []
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        info = _status(pid)
        if info and info[2] not in ("Z", "X") and (info[0] == uid or info[1] == sid):
            found.append(int(pid))
    return found


def _kill(pid: int, uid: int | None, sid: int) -> None:
    """SIGKILL ``pid`` (through a pidfd where there is one) if it is still one of the run's."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (OSError, AttributeError):  # no pidfd (Linux < 5.3): a tiny pid-reuse window
        fd = None
    try:
        info = _status(str(pid))
        if info and (info[0] == uid or info[1] == sid):
            if fd is None:
                os.kill(pid, signal.SIGKILL)
            else:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        if fd is not None:
            os.close(fd)


def kill_tree(pid: int, uid: int | None) -> None:
    """Kill the run's session leader, its process group, and every process left of the run."""
    for kill in (os.kill, os.killpg):
        with contextlib.suppress(OSError):
            kill(pid, signal.SIGKILL)
    for _ in range(1000):  # a contained fork bomb converges in a few rounds
        found = strays(uid, pid)
        if not found:
            return
        for stray in found:
            _kill(stray, uid, pid)
        time.sleep(0.001)
