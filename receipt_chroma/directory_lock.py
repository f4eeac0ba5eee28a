"""``DirectoryLock``: one writer per snapshot directory, across processes.

Two processes writing one Chroma directory corrupt it silently (see docs/chromadb.md), so
every writer holds an exclusive ``flock`` on ``<dir>/.writer.lock`` for as long as it has the
directory open, and a second writer gets a clear error naming the holder's pid. The kernel
drops the lock when the holder exits, so a crashed writer never leaves it stuck.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

LOCK_FILE = ".writer.lock"


class DirectoryBusy(Exception):
    """Another process is writing the directory."""


class DirectoryLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DirectoryBusy(
                f"{self.path.parent} is being written by another process (pid {holder}); "
                "a snapshot directory has one writer at a time"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
