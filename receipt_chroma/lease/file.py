"""Fenced leases in local files: per lease name a JSON state file and a guard file.

For local snapshot stores; processes on one machine only. The same state as a DynamoDB lock
item lives in ``<root>/.locks/``, each change made under an exclusive ``flock`` on the name's
guard file and written atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from receipt_chroma.lease.errors import LeaseBusy
from receipt_chroma.lease.interface import Clock
from receipt_chroma.lease.state import LEASE_KEY, HeldLease, _State
from receipt_chroma.lease.values import _check_name, _check_ttl, new_owner_id

LEASES_DIR = ".locks"


class FileLeases:
    """Fenced leases in ``<root>/.locks/``: per name a JSON state file and a guard file.

    Every read-modify-write holds an exclusive ``flock`` on the guard file, and every write
    replaces the state file atomically (write a temporary file, fsync, rename, fsync the
    directory), so a crash never loses a token. The state file is never deleted. Works between
    threads and processes on one machine (``flock`` is per open file, not per process).
    """

    def __init__(self, root: Path, *, clock: Clock = time.time) -> None:
        self.root = Path(root)
        self.directory = self.root / LEASES_DIR
        self.clock = clock

    def _stem(self, name: str) -> str:
        return "lock-" + quote(_check_name(name), safe="")

    def state_path(self, name: str) -> Path:
        return self.directory / f"{self._stem(name)}.json"

    def _guard_path(self, name: str) -> Path:
        return self.directory / f"{self._stem(name)}.guard"

    @contextlib.contextmanager
    def _guard(self, name: str, *, exclusive: bool = True) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._guard_path(name), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def read(self, name: str) -> dict[str, Any] | None:
        """The lock's state as stored (a dict), or None: for checks and diagnostics."""
        with self._guard(name, exclusive=False):
            return self._read(name)

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            text = self.state_path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        state: dict[str, Any] = json.loads(text)
        return state

    def _write(self, name: str, state: dict[str, Any]) -> None:
        path = self.state_path(name)
        temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
        data = json.dumps(state, sort_keys=True).encode()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        directory_fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(directory_fd)
        except OSError as error:  # some filesystems refuse fsync on a directory
            if error.errno not in (errno.EINVAL, errno.EBADF):
                raise
        finally:
            os.close(directory_fd)

    def acquire(self, name: str, *, ttl: float) -> FileLease:
        name, ttl = _check_name(name), _check_ttl(ttl)
        owner = new_owner_id()
        with self._guard(name):
            now = self.clock()
            current = self._read(name)
            state = _state_from_dict(current)
            if state is not None and state.owner is not None and not state.expires_at < now:
                raise LeaseBusy(
                    name,
                    holder=state.owner,
                    token=state.token,
                    expires_at=state.expires_at,
                    now=now,
                )
            token = (state.token if state else 0) + 1
            expires_at = now + ttl
            self._write(
                name,
                {
                    LEASE_KEY: name,
                    "owner": owner,
                    "token": token,
                    "expires_at": expires_at,
                    "acquired_at": now,
                    "heartbeat_at": now,
                },
            )
        return FileLease(self, name, owner=owner, token=token, expires_at=expires_at, ttl=ttl)


def _state_from_dict(state: dict[str, Any] | None) -> _State | None:
    if state is None:
        return None
    return _State(state.get("owner"), int(state.get("token", 0)), float(state["expires_at"]))


class FileLease(HeldLease["FileLeases"]):
    """A lease held in a :class:`FileLeases` directory; made by :meth:`FileLeases.acquire`."""

    def _where(self) -> str:
        return f"root={str(self.leases.root)!r}"

    _state_of = staticmethod(_state_from_dict)

    def heartbeat(self) -> None:
        leases = self.leases
        with leases._guard(self.name):
            now = leases.clock()
            current = leases._read(self.name)
            state = _state_from_dict(current)
            if current is None or state is None or not state.held_by(self.owner, self.token, now):
                raise self._lost(current, now)
            expires_at = now + self.ttl
            leases._write(self.name, {**current, "expires_at": expires_at, "heartbeat_at": now})
        self.expires_at = expires_at

    def release(self) -> None:
        leases = self.leases
        with leases._guard(self.name):
            now = leases.clock()
            current = leases._read(self.name)
            state = _state_from_dict(current)
            if (
                current is not None
                and state is not None
                and state.owner == self.owner
                and state.token == self.token
            ):
                released = {k: v for k, v in current.items() if k != "owner"}
                leases._write(self.name, {**released, "expires_at": now, "released_at": now})
        self._released = True
