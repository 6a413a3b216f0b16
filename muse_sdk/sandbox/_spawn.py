"""Start the confined child, drain its output within the limits, and kill what is left."""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from muse_sdk.sandbox._limits import MIB, Limits
from muse_sdk.sandbox._procs import SandboxError, kill_tree

__all__ = ["Raw", "prepare_dir", "remove_dir", "spawn"]

CHILD = Path(__file__).with_name("_child.py")
READ_SIZE = 1 << 16
REPORT_BYTES = 4 * MIB
POLL_S = 0.01  # exit polling where there is no pidfd
DRAIN_S = 0.5  # reading what is left once every process of the run is dead


class _Capture:
    """Keeps the head and the tail of a stream, counting what is dropped in between."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit - limit // 2
        self.tail_limit = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > 2 * self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    def text(self) -> str:
        tail = self.tail[len(self.tail) - self.tail_limit :] if self.tail_limit else bytearray()
        dropped = self.total - len(self.head) - len(tail)
        if dropped <= 0:
            return (self.head + self.tail).decode("utf-8", errors="replace")
        return (
            self.head.decode("utf-8", errors="replace")
            + f"\n[... {dropped:,} bytes trimmed ...]\n"
            + tail.decode("utf-8", errors="replace")
        )


@dataclass
class Raw:
    """What the parent saw of one run, before it is judged."""

    exit_code: int | None
    signal: int | None
    cpu_s: float
    timed_out: bool
    duration_s: float
    stdout: str
    stderr: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def first(self, key: str) -> Any:
        """The value of the first event carrying ``key``, else ``None``."""
        return next((event[key] for event in self.events if key in event), None)


def prepare_dir(files: Mapping[str, str], uid: int | None) -> str:
    """A fresh private directory holding ``files`` (relative POSIX paths), owned by ``uid``."""
    tmp = tempfile.mkdtemp(prefix="muse-sandbox-")
    try:
        for name, text in files.items():
            rel = PurePosixPath(name)
            if rel.is_absolute() or ".." in rel.parts or not rel.parts or "\0" in name:
                raise SandboxError(f"file name {name!r} must be a relative path inside the run")
            path = Path(tmp, *rel.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if uid is not None:
            for root, dirs, names in os.walk(tmp):
                for entry in [root, *(os.path.join(root, n) for n in dirs + names)]:
                    os.chown(entry, uid, uid)
    except BaseException:
        remove_dir(tmp)
        raise
    return tmp


def remove_dir(path: str) -> None:
    """Remove a run's directory, even where the code took permissions away."""

    def retry(func: Any, failed: str, _exc: Any) -> None:
        try:
            os.chmod(os.path.dirname(failed), stat.S_IRWXU)
            os.chmod(failed, stat.S_IRWXU)
            func(failed)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)
    shutil.rmtree(path, ignore_errors=True)


def env_for(tmp: str) -> dict[str, str]:
    """The child's whole environment: nothing from the caller's but ``PATH``."""
    path = os.environ.get("PATH") or os.defpath
    return {"PATH": path, "LANG": "C.UTF-8", "HOME": tmp, "TMPDIR": tmp}


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


class _Exit:
    """Tells whether the child exited without reaping it, so its group id stays reserved."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.reaped: tuple[int, Any] | None = None

    def poll(self) -> bool:
        if self.reaped is not None:
            return True
        if hasattr(os, "waitid"):
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        pid, status, usage = os.wait4(self.pid, os.WNOHANG)  # macOS before 3.13: reap now
        if pid:
            self.reaped = (status, usage)
        return bool(pid)

    def reap(self) -> tuple[int, Any]:
        if self.reaped is None:
            _, status, usage = os.wait4(self.pid, 0)
            self.reaped = (status, usage)
        return self.reaped


def _read(fd: int, sel: selectors.BaseSelector, captures: dict[int, _Capture]) -> None:
    chunk = os.read(fd, READ_SIZE)
    if chunk:
        captures[fd].feed(chunk)
    else:
        sel.unregister(fd)


def _wait(
    sel: selectors.BaseSelector,
    captures: dict[int, _Capture],
    pidfd: int | None,
    child: _Exit,
    deadline: float,
) -> bool:
    """Drain the pipes until the child exits (True) or the deadline passes (False)."""
    while (remaining := deadline - time.monotonic()) > 0:
        for key, _ in sel.select(remaining if pidfd is not None else min(remaining, POLL_S)):
            if key.fd == pidfd:
                return True
            _read(key.fd, sel, captures)
        if pidfd is None and child.poll():
            return True
    return False


def spawn(config: dict[str, Any], tmp: str, limits: Limits, uid: int | None) -> Raw:
    """Run ``_child.py`` with ``config`` in ``tmp``; kill every process of the run at the end."""
    report_r, report_w = os.pipe()
    config = {**config, "report_fd": report_w, "parent": os.getpid()}
    argv = [sys.executable, "-I", "-B", str(CHILD), json.dumps(config)]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=tmp,
            env=env_for(tmp),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(report_w,),
            start_new_session=True,
        )
    except OSError as exc:
        os.close(report_r)
        raise SandboxError(f"cannot start the sandbox's Python ({sys.executable}): {exc}") from exc
    finally:
        os.close(report_w)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    nonce = secrets.token_hex(16)
    try:
        proc.stdin.write(nonce.encode() + b"\n")
        proc.stdin.close()
    except OSError:
        pass
    out, err = proc.stdout.fileno(), proc.stderr.fileno()
    captures = {
        out: _Capture(limits.output_bytes),
        err: _Capture(limits.output_bytes),
        report_r: _Capture(REPORT_BYTES),
    }
    pidfd = _pidfd(proc.pid)
    child = _Exit(proc.pid)
    sel = selectors.DefaultSelector()
    killed = False
    try:
        for fd in captures:
            sel.register(fd, selectors.EVENT_READ)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ)
        exited = _wait(sel, captures, pidfd, child, start + limits.wall_s)
        duration = time.monotonic() - start
        kill_tree(proc.pid, uid)
        killed = True
        if pidfd is not None:
            sel.unregister(pidfd)
        until = time.monotonic() + DRAIN_S  # every writer is dead: read what is left
        while sel.get_map() and (remaining := until - time.monotonic()) > 0:
            for key, _ in sel.select(remaining):
                _read(key.fd, sel, captures)
    finally:  # also on KeyboardInterrupt: nothing of the run outlives the call
        if not killed:
            kill_tree(proc.pid, uid)
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        status, usage = child.reap()
        proc.returncode = os.waitstatus_to_exitcode(status)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        os.close(report_r)
    events = []
    for line in captures[report_r].text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.pop("nonce", None) == nonce:
            events.append(event)
    return Raw(
        exit_code=proc.returncode if proc.returncode >= 0 else None,
        signal=-proc.returncode if proc.returncode < 0 else None,
        cpu_s=usage.ru_utime + usage.ru_stime,
        timed_out=not exited,
        duration_s=duration,
        stdout=captures[out].text(),
        stderr=captures[err].text(),
        events=events,
    )
