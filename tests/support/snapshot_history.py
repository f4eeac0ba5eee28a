"""A few receipts' events, and snapshot directories projected to chosen positions of them.

The snapshot and compaction tests publish, pull and compare these directories: four
positions with something to see at each (runs, labels, place changes) and a tail past them.
"""

from __future__ import annotations

from pathlib import Path

from projections.publish import publish_directory
from receipt_chroma.snapshots import SnapshotStore
from tests.projection.helpers import Log, project


class History:
    """A few receipts' events, and snapshot directories projected to chosen positions."""

    def __init__(self, log: Log, root: Path) -> None:
        self.log = log
        self.root = root
        first = log.add(
            log.run(
                "run-1", lines={1: "TOTAL", 2: "CASH"}, words={(1, 1): "TOTAL", (2, 1): "CASH"}
            ),
            log.place(merchant_name="Corner Shop"),
        )
        second = log.add(log.label(1, 1, "GRAND_TOTAL", "PENDING"))
        third = log.add(log.label(1, 1, "GRAND_TOTAL", "VALID"), log.place(merchant_name="Corner"))
        fourth = log.add(
            log.run("run-2", words={(1, 2): "12.50"}),
            log.label(1, 2, "LINE_TOTAL", "VALID"),
        )
        self.positions = [first[-1], second[-1], third[-1], fourth[-1]]
        log.add(log.label(2, 1, "PAYMENT", "INVALID"), log.unplace())  # a tail past them all

    def snapshot_at(self, position: int) -> Path:
        path = self.root / f"at-{position}"
        if not path.exists():
            project(self.log.store, path, self.log.deltas, to=position)
        return path


def publish_next(snapshots: SnapshotStore, directory: Path, token: int) -> str:
    """Publish ``directory`` on top of whatever the pointer names now; returns its key."""
    pointer, version = snapshots.pointer()
    manifest, _ = publish_directory(
        directory,
        snapshots,
        token=token,
        parent=pointer.key if pointer else None,
        expected=version,
    )
    return manifest.key
