"""A snapshot directory: the Chroma collections, the projection state, one writer at a time.

Layout: ``chroma/`` (a Chroma persistent directory with ``lines`` and ``words``),
``state.sqlite3`` (the projection state and checkpoint), ``.writer.lock``. Everything needed
to resume lives inside, so a copied or restored directory is self-contained.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from projections.errors import NotASnapshot
from projections.state import STATE_FILE, ProjectionState
from receipt_chroma.client import ChromaDirectory, open_chroma
from receipt_chroma.directory_lock import DirectoryLock

CHROMA_SUBDIR = "chroma"


class SnapshotDirectory:
    """Open with :func:`open_snapshot`; close (or use as a context manager) to release it."""

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        if not create and not (path / STATE_FILE).is_file():
            raise NotASnapshot(f"{path} is not a snapshot directory (no {STATE_FILE})")
        if create:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as error:
                raise NotASnapshot(
                    f"cannot create the snapshot directory {path}: {error.strerror}"
                ) from None
        self._lock = DirectoryLock(path)
        self._lock.acquire()
        try:
            self.state = ProjectionState(path / STATE_FILE)
        except BaseException:
            self._lock.release()
            raise
        self._chroma: ChromaDirectory | None = None
        self._sealed = False

    @property
    def chroma(self) -> ChromaDirectory:
        if self._sealed:
            raise RuntimeError(f"{self.path} is sealed for copying; open it again to write")
        if self._chroma is None:
            self._chroma = open_chroma(self.path / CHROMA_SUBDIR, create=True)
        return self._chroma

    def seal(self) -> None:
        """Close Chroma and the state (everything flushed to its files) but keep the lock.

        Done before the directory's files are hashed or copied, so nothing changes under them.
        """
        if self._chroma is not None:
            self._chroma.close()
            self._chroma = None
        if not self._sealed:
            self.state.close()
            self._sealed = True

    def close(self) -> None:
        try:
            self.seal()
        finally:
            self._lock.release()

    def __enter__(self) -> SnapshotDirectory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_snapshot(path: Path, *, create: bool = True) -> SnapshotDirectory:
    return SnapshotDirectory(path, create=create)
