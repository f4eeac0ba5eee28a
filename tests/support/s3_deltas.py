"""Each embedding run's two deltas, written with the project's delta writer and uploaded to
S3 where the run item points (directory layout or ``delta.tar.gz``), as the embedding job
does before it writes the run item."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from synthetic.deltas import Layout, write_run_deltas
from synthetic.history import RunContent


def split_s3(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def write_local_deltas(
    runs: list[RunContent], root: Path, *, dimension: int, layout_of: Callable[[int], Layout]
) -> dict[str, Path]:
    """Each run's deltas under ``root/<run_id>``; returns run_id → that directory."""
    written: dict[str, Path] = {}
    for index, run in enumerate(runs):
        local = msgspec.structs.replace(
            run, lines_delta=f"{run.run_id}/lines", words_delta=f"{run.run_id}/words"
        )
        if not (root / run.run_id).exists():
            write_run_deltas(local, root, dimension=dimension, layout=layout_of(index))
        written[run.run_id] = root / run.run_id
    return written


def upload_deltas(s3: Any, runs: list[RunContent], local: Mapping[str, Path]) -> list[str]:
    """Upload each run's local deltas to where its run item points (``s3://...``)."""
    keys: list[str] = []
    for run in runs:
        for collection, url in (("lines", run.lines_delta), ("words", run.words_delta)):
            bucket, prefix = split_s3(url)
            source = local[run.run_id] / collection
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                key = f"{prefix}/{path.relative_to(source).as_posix()}"
                s3.upload_file(str(path), bucket, key)
                keys.append(key)
    return keys
