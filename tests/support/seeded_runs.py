"""One seed's inputs for the crash and outage cases, and its clean reference run.

A seed's synthetic history (with real Chroma deltas) is cut into three parts of a stream;
the reference plays them cleanly (ingest part 1 → compact → ingest part 2 → project →
compact → ingest part 3 → compact), counting how often each step passes each fault point,
and keeps the log and digest every case must end equal to. Seeds are built once a session.
"""

from __future__ import annotations

import random
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from receipt_events import faults
from synthetic.deltas import write_run_deltas
from synthetic.history import HistoryConfig, generate_history, to_jsonl
from tests.support.log_contents import Events, read_events, read_log
from tests.support.pipeline_site import (
    INGEST_BATCH,
    LOCK_TTL,
    PROJECT_BATCH,
    Site,
    compact_once,
    ingest_file,
    project_dir,
)

DIMENSION = 8


def history_config(seed: int) -> HistoryConfig:
    return HistoryConfig(
        seed=seed,
        receipts=3,
        lines_per_receipt=(2, 5),
        words_per_line=(1, 3),
        letters_per_word=(0, 1),
        removal_rate=0.3,
    )


@dataclass
class SeedData:
    """One seed's inputs (three parts of a stream, the deltas) and its clean reference run."""

    seed: int
    deltas: Path
    parts: dict[str, Path]  # ingest1 / ingest2 / ingest3 → that part of the stream
    events: Events  # the clean log
    positions: list[int]  # its positions
    through_part2: int  # how many of its events parts 1 and 2 hold
    passes: dict[str, Counter[str]]  # reference step → fault point → times passed
    digest: str  # the reference's final published digest
    position: int


def _cuts(intents: list[str], rng: random.Random) -> tuple[int, int]:
    """Where parts 2 and 3 start. Part 1 ends between the first two embedding runs and part 2
    soon after the second, so the first snapshot has records, the killed steps write vectors
    as well as metadata, and part 3 goes on changing (relabelling, removing) what part 2
    wrote: a restart that does not redo a killed batch exactly is caught."""
    runs = [index for index, intent in enumerate(intents) if intent == "run_insert"]
    assert len(runs) >= 2, "a history with fewer than two embedding runs"
    first = rng.randint(runs[0] + 1, runs[1])
    second = rng.randint(runs[1] + 1, max(runs[1] + 1, (runs[1] + 2 * len(intents)) // 3))
    return first, min(second, len(intents))


def build_seed(seed: int, root: Path) -> SeedData:
    history = generate_history(history_config(seed))
    rng = random.Random(seed)
    deltas = root / "deltas"
    for run in history.runs:
        write_run_deltas(
            run, deltas, dimension=DIMENSION, layout="tarball" if seed % 3 == 0 else "directory"
        )
    first, second = _cuts(history.intents, rng)
    parts = {f"ingest{index}": root / f"part{index}.jsonl" for index in (1, 2, 3)}
    parts["ingest1"].write_bytes(to_jsonl(history.records[:first]))
    parts["ingest2"].write_bytes(to_jsonl(history.records[first:second]))
    parts["ingest3"].write_bytes(to_jsonl(history.records[second:]))

    # the clean reference: the same steps in this process, counting each fault point
    reference = Site(
        root=root / "reference",
        store_url="sqlite:///" + str(root / "reference" / "events.db"),
        snapshots_url=str(root / "reference" / "store"),
        deltas=deltas,
    )
    ingest_file(reference, parts["ingest1"])
    compact_once(reference)
    passes: dict[str, Counter[str]] = {}
    with counting_faults() as passes["ingest2"]:
        ingest_file(reference, parts["ingest2"])
    shutil.copytree(reference.cache, reference.root / "project-cache")
    with counting_faults() as passes["project"]:
        project_dir(reference, reference.root / "project-cache", PROJECT_BATCH)
    with counting_faults() as passes["compact"]:
        assert compact_once(reference).published
    through_part2 = len(read_events(reference.store_url))
    ingest_file(reference, parts["ingest3"])
    compact_once(reference)
    pointer, _ = reference.snapshot_store().pointer()
    assert pointer is not None
    events, positions = read_log(reference.store_url)
    assert pointer.position == positions[-1]
    return SeedData(
        seed=seed,
        deltas=deltas,
        parts=parts,
        events=events,
        positions=positions,
        through_part2=through_part2,
        passes=passes,
        digest=pointer.digest,
        position=pointer.position,
    )


_built: dict[int, SeedData] = {}  # for the whole session (the outage tests use them too)


def seed_built(seed: int, tmp_path_factory: pytest.TempPathFactory) -> SeedData:
    if seed not in _built:
        _built[seed] = build_seed(seed, tmp_path_factory.mktemp(f"seed-{seed}"))
    return _built[seed]


@contextmanager
def counting_faults() -> Iterator[Counter[str]]:
    """Count the fault points passed in this process (no fault is armed here)."""
    counts: Counter[str] = Counter()
    guard = threading.Lock()
    original = faults.point

    def point(name: str) -> None:
        with guard:
            counts[name] += 1
        original(name)

    faults.point = point
    try:
        yield counts
    finally:
        faults.point = original


def step_argv(
    step: str, site: Site, data: SeedData, batch_size: int = PROJECT_BATCH
) -> list[str | Path]:
    if step.startswith("ingest"):
        return ["ingest", data.parts[step], "--batch-size", str(INGEST_BATCH), "--json"]
    if step == "project":
        return ["project", "--snapshot-dir", site.cache, "--batch-size", str(batch_size), "--json"]
    assert step == "compact"
    return [
        "compact",
        "--snapshot-store",
        site.snapshots_url,
        "--snapshot-dir",
        site.cache,
        "--lease-ttl",
        str(int(LOCK_TTL)),
        "--json",
    ]


def run_in_process(step: str, site: Site, data: SeedData) -> None:
    site.runs.append(f"{step} (in process)")
    if step.startswith("ingest"):
        ingest_file(site, data.parts[step])
    elif step == "project":
        project_dir(site, site.cache, PROJECT_BATCH)
    else:
        compact_once(site)
