"""``Limits``: what one sandboxed run may use."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Limits"]

KIB = 1024
MIB = 1024 * KIB


class Limits(BaseModel):
    """What one sandboxed run may use; every field is enforced by the kernel, not by the code.

    - ``wall_s``: wall-clock seconds before the whole process tree is killed.
    - ``cpu_s``: CPU seconds of each process (``RLIMIT_CPU``).
    - ``memory_mb``: memory of each process: its address space for Python tests
      (``RLIMIT_AS``), its heap and private mappings for commands (``RLIMIT_DATA``), because
      runtimes such as node or the JVM reserve far more address space than they use.
    - ``processes``: processes and threads alive at once, the first one included
      (``RLIMIT_NPROC``, for a private uid when muse runs as root).
    - ``file_mb``: largest file a process may write (``RLIMIT_FSIZE``).
    - ``output_bytes``: bytes of stdout and of stderr kept (head and tail); the rest is drained
      and dropped.
    - ``network``: allow network access; when ``False`` the code runs in an empty network
      namespace where one can be made (Linux, as root).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_s: float = Field(default=10.0, gt=0)
    cpu_s: float = Field(default=10.0, gt=0)
    memory_mb: int = Field(default=512, ge=16)
    processes: int = Field(default=64, ge=1)
    file_mb: int = Field(default=64, ge=1)
    output_bytes: int = Field(default=64 * KIB, ge=256)
    network: bool = False
