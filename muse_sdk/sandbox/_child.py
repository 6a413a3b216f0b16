"""The sandbox's child process: it confines itself, then runs the tests or execs a command.

The parent runs ``python -I -B _child.py CONFIG`` in the run's temporary directory, with a
scrubbed environment, in a new session. This script is standalone (stdlib only, never imports
muse_sdk) and, before any candidate code runs:

1. reads the report nonce from stdin, then points stdin at ``/dev/null``;
2. as root on Linux, enters a new network namespace (only a down loopback) and, when the
   interpreter lives under a directory others cannot enter (such as ``/root``), a mount
   namespace where that directory is a tmpfs holding only the interpreter's tree;
3. sets the resource limits, then (as root) drops to the run's private uid and gid;
4. on Linux sets ``no_new_privs`` and a parent-death SIGKILL.

Then, in ``tests`` mode, it imports the module under test and the test module, runs each
``test*`` function (and ``Test*`` class method), and reports one JSON line per event on the
report pipe, each carrying the nonce; in ``exec`` mode it execs the command (the report pipe is
closed on exec).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import resource
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SIGKILL = 9
CO_COROUTINE = 0x80
MESSAGE_CHARS = 1200
FRAMES_SHOWN = 3


class SetupError(Exception):
    """The sandbox could not confine this process: reported, and no code runs."""


class Reporter:
    """Writes JSON lines carrying the nonce to the report pipe."""

    def __init__(self, fd: int, nonce: str) -> None:
        self.fd = fd
        self.nonce = nonce

    def send(self, **fields: Any) -> None:
        """Write one event; the parent ignores lines without the nonce."""
        data = (json.dumps({"nonce": self.nonce, **fields}) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data) :]


def _read_nonce() -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 256)
        if not chunk:
            break
        data += chunk
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return data.decode().strip()


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _call(libc: Any, name: str, *args: Any) -> None:
    if getattr(libc, name)(*args) != 0:
        import ctypes

        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")


def _unmask(libc: Any, plan: list[list[Any]]) -> None:
    """In a new mount namespace, cover each closed directory with a tmpfs of its needed children."""
    _call(libc, "unshare", CLONE_NEWNS)
    _call(libc, "mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    for closed, children in plan:
        fds = [os.open(child, os.O_PATH | os.O_DIRECTORY) for child in children]
        fstype = b"tmpfs"
        _call(libc, "mount", fstype, closed.encode(), fstype, MS_NOSUID | MS_NODEV, b"mode=0755")
        for child, fd in zip(children, fds, strict=True):
            target = os.path.join(closed, os.path.basename(child))
            os.mkdir(target, 0o755)
            source = f"/proc/self/fd/{fd}".encode()
            _call(libc, "mount", source, target.encode(), None, MS_BIND | MS_REC, None)
            os.close(fd)


def _own_tasks() -> int:
    """Processes and threads of this uid: ``RLIMIT_NPROC`` counts them all."""
    uid = str(os.getuid())
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
            if fields["Uid"].split()[0] == uid:
                count += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return count


def _set_limit(name: str, soft: int, hard: int, field: str, unenforced: list[str]) -> None:
    which = getattr(resource, name, None)
    if which is None:
        unenforced.append(field)
        return
    try:
        _, old_hard = resource.getrlimit(which)
        if old_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, old_hard), min(hard, old_hard)
        resource.setrlimit(which, (soft, hard))
    except (OSError, ValueError):
        unenforced.append(field)


def confine(config: dict[str, Any]) -> dict[str, Any]:
    """Apply namespaces, limits and the uid drop; return what was enforced."""
    linux = sys.platform.startswith("linux")
    root = os.geteuid() == 0
    libc = _libc() if linux else None
    unenforced: list[str] = []
    isolated = bool(config["network"])
    if not isolated and linux and root:
        try:
            _call(libc, "unshare", CLONE_NEWNET)
            isolated = True
        except OSError:
            pass
    if not isolated:
        unenforced.append("network")
    if config["unmask"]:
        try:
            _unmask(libc, config["unmask"])
        except OSError as exc:
            raise SetupError(f"cannot expose the interpreter to the sandbox user: {exc}") from exc
    for name, (soft, hard), field in config["rlimits"]:
        _set_limit(name, soft, hard, field, unenforced)
    processes = config["processes"]
    if config["uid"] is not None:
        try:
            os.setgroups([])
            os.setgid(config["uid"])
            os.setuid(config["uid"])
        except OSError as exc:
            raise SetupError(
                f"cannot switch to the private uid {config['uid']} ({exc}): give muse CAP_SETUID "
                "or run it as a non-root user"
            ) from exc
    elif linux:
        processes += _own_tasks()  # the limit counts every task of this user
    if linux or config["uid"] is not None:
        _set_limit("RLIMIT_NPROC", processes, processes, "processes", unenforced)
    else:
        unenforced.append("processes")
    if libc is not None:  # hardening, best effort: setuid programs gain nothing, orphans die
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
        if os.getppid() != config["parent"]:
            os._exit(1)  # the parent died before the death signal was armed
    return {"network_isolated": isolated and not config["network"], "unenforced": unenforced}


# --- tests mode ------------------------------------------------------------------------------


def _trim(text: str, limit: int = MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 15] + " ... [trimmed]"


def describe(exc: BaseException) -> str:
    """One line: the exception and where it happened in the run's files (innermost first)."""
    try:
        here = os.getcwd() + os.sep
        if isinstance(exc, SyntaxError) and exc.filename:
            where = f"{os.path.basename(exc.filename)}, line {exc.lineno}"
            code = (exc.text or "").strip()
            return _trim(f"{type(exc).__name__}: {exc.msg} ({where}{': ' + code if code else ''})")
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(here)]
        spots = [
            f"{os.path.basename(f.filename)}:{f.lineno} `{(f.line or '').strip()}`"
            for f in reversed(frames[-FRAMES_SHOWN:])
        ]
        return _trim(f"{text} (at {', called from '.join(spots)})" if spots else text)
    except BaseException:  # e.g. MemoryError while formatting
        return type(exc).__name__


def _param_cases(fn: Callable[..., Any]) -> list[tuple[str, dict[str, Any]]]:
    """Expand ``pytest.mark.parametrize`` marks (when the tests use pytest) into keyword cases."""
    cases: list[tuple[str, dict[str, Any]]] = [("", {})]
    for mark in reversed(getattr(fn, "pytestmark", [])):
        if getattr(mark, "name", "") != "parametrize":
            continue
        names, values = mark.args[0], mark.args[1]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        rows = [getattr(v, "values", v) for v in values]
        rows = [tuple(row) if len(names) > 1 else (row,) for row in rows]
        cases = [
            (f"{cid}-{i}" if cid else str(i), {**kw, **dict(zip(names, row, strict=True))})
            for cid, kw in cases
            for i, row in enumerate(rows)
        ]
    return cases


def _cases(name: str, fn: Callable[..., Any], owner: type | None) -> list[tuple[str, Any]]:
    found = []
    for case_id, kwargs in _param_cases(fn):
        label = f"{name}[{case_id}]" if case_id else name

        def run(fn: Any = fn, kwargs: dict[str, Any] = kwargs) -> None:
            code = fn.__code__
            wanted = code.co_varnames[int(owner is not None) : code.co_argcount]
            required = wanted[: len(wanted) - len(fn.__defaults__ or ())]
            missing = ", ".join(arg for arg in required if arg not in kwargs)
            if missing:
                raise TypeError(f"test needs {missing}: pytest fixtures are not supported")
            target = (lambda **kw: fn(owner(), **kw)) if owner is not None else fn
            result = target(**kwargs)
            if code.co_flags & CO_COROUTINE:
                import asyncio

                asyncio.run(result)

        found.append((label, run))
    return found


def collect(module: types.ModuleType) -> list[tuple[str, Any]]:
    """Test functions and ``Test*`` class methods defined in ``module``, in file order."""
    found: list[tuple[str, Any]] = []
    for name, value in vars(module).items():
        if getattr(value, "__module__", None) != module.__name__:
            continue
        if isinstance(value, types.FunctionType) and name.startswith("test"):
            found.extend(_cases(name, value, None))
        elif isinstance(value, type) and name.startswith("Test"):
            for attr, method in vars(value).items():
                if attr.startswith("test") and isinstance(method, types.FunctionType):
                    found.extend(_cases(f"{name}.{attr}", method, value))
    return found


def run_tests(config: dict[str, Any], report: Reporter) -> None:
    """Import the code, then the tests, and report each test's outcome."""
    sys.path.insert(0, os.getcwd())
    main_pid = os.getpid()
    modules = {}
    for module in (config["module"], "test_" + config["module"]):
        try:
            modules[module] = importlib.import_module(module)
        except BaseException as exc:
            code = exc.code if isinstance(exc, SystemExit) else None
            if os.getpid() != main_pid:
                os._exit(0)
            report.send(
                import_error=f"{module}.py",
                kind=type(exc).__name__,
                message=describe(exc),
                code=code if isinstance(code, int) else None,
            )
            return
    if os.getpid() != main_pid:
        os._exit(0)  # a process the code forked while being imported
    tests = collect(modules["test_" + config["module"]])
    report.send(collected=len(tests))
    for name, test in tests:
        report.send(start=name)
        try:
            test()
        except BaseException as exc:
            if os.getpid() != main_pid:
                os._exit(0)  # a process the test forked: it never reports
            report.send(done=name, ok=False, kind=type(exc).__name__, message=describe(exc))
        else:
            if os.getpid() != main_pid:
                os._exit(0)
            report.send(done=name, ok=True)
    report.send(end=True)


def main() -> None:
    """Confine this process, then run the tests or exec the command, reporting on the pipe."""
    config = json.loads(sys.argv[1])
    report = Reporter(config["report_fd"], _read_nonce())
    try:
        report.send(applied=confine(config))
    except SetupError as exc:
        report.send(setup_error=str(exc))
        os._exit(125)
    if config["mode"] == "exec":
        os.set_inheritable(report.fd, False)
        argv = config["argv"]
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            report.send(exec_error=f"cannot run {argv[0]!r}: {exc.strerror or exc}")
            os._exit(127)
    try:
        run_tests(config, report)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):  # the code may have closed it
                stream.flush()
        os._exit(0)  # skip atexit hooks and the code's leftover threads


if __name__ == "__main__":
    main()
