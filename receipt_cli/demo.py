"""``receipt-events demo``: the whole pipeline on embedded defaults, narrated.

Generate a stream history with embedding deltas → ingest it (twice: the second time every
record is a duplicate) → project it into a snapshot directory in uneven batches → rebuild a
second snapshot from zero → the two digests are equal → verify → a similarity query.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.rule import Rule

from receipt_events.cli.errors import EXIT_CHECK_FAILED, fail
from receipt_events.cli.output import console
from receipt_events.cli.render import event_line, ingest_table
from receipt_events.ingest import ingest
from receipt_events.records import read_input
from receipt_events.store import open_store
from synthetic.history import HistoryConfig, corrupt_lines, generate_history, to_jsonl

DEMO_MARKER = ".receipt-events-demo"
DEMO_ENTRIES = (
    "events.db",
    "events.db-wal",
    "events.db-shm",
    "stream.jsonl",
    "deltas",
    "snapshot",
    "rebuilt",
)
PROJECT_STEPS = (0.07, 0.31, 0.32, 0.70, 1.0)  # uneven batches, one of them tiny


def demo_command(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where the demo writes its store and files.")
    ] = Path(".demo"),
    receipts: Annotated[int, typer.Option("--receipts", min=1, help="Receipts to simulate.")] = 12,
    dim: Annotated[int, typer.Option("--dim", min=2, help="Embedding dimension.")] = 384,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic history.")] = 7,
) -> None:
    """Run the whole pipeline on embedded defaults and show what it did."""

    # the projection and the delta writer load Chroma: only when the demo runs
    from projections.runner import catch_up, rebuild, snapshot_digest
    from projections.snapshot_dir import open_snapshot
    from projections.verify import verify
    from receipt_chroma.deltas import LocalDeltaSource
    from synthetic.deltas import write_run_deltas

    _prepare(workdir)
    stream_path = workdir / "stream.jsonl"
    store_url = f"sqlite:///{(workdir / 'events.db').resolve()}"
    deltas = LocalDeltaSource(workdir)

    console.print(Rule("1. a synthetic DynamoDB stream history, with embedding deltas"))
    history = generate_history(HistoryConfig(seed=seed, receipts=receipts, delta_root="deltas"))
    stream_path.write_bytes(corrupt_lines(to_jsonl(history.records), 3, seed))
    for index, run_content in enumerate(history.runs):
        # Both layouts, as the producers write them: every third run as delta.tar.gz.
        write_run_deltas(
            run_content,
            workdir,
            dimension=dim,
            layout="tarball" if index % 3 == 2 else "directory",
        )
    console.print(
        f"{len(history.records)} stream records for {receipts} receipts plus 3 malformed "
        f"records → {stream_path}\n{len(history.runs)} compaction runs, "
        f"{2 * len(history.runs)} deltas ({dim}-d embeddings) → {workdir / 'deltas'}"
    )
    records = read_input(stream_path.read_bytes(), str(stream_path))

    with open_store(store_url) as store:
        console.print(Rule("2. ingest into the event log"))
        console.print(f"store: {store.url}")
        console.print(ingest_table(ingest(store, records), "first ingest"))

        console.print(Rule("3. ingest the same file again: idempotent"))
        again = ingest(store, records)
        console.print(ingest_table(again, "second ingest"))
        if again.appended:
            fail(f"the second ingest appended {again.appended} events", EXIT_CHECK_FAILED)

        console.print(Rule("4. the first events in the log, and what was parked"))
        for recorded in store.read(limit=8):
            console.print(event_line(recorded), highlight=False, soft_wrap=True)
        for parked in store.parked_records():
            console.print(f"parked {parked.origin}: {parked.error}", highlight=False)

        console.print(Rule("5. project into a snapshot directory, in uneven batches"))
        snapshot_path = workdir / "snapshot"
        head = store.head()
        with open_snapshot(snapshot_path) as snapshot:
            for step in PROJECT_STEPS:
                result = catch_up(store, snapshot, deltas, to=round(head * step), batch_size=97)
                console.print(
                    f"  → position {result.to_position:>5}: {result.applied:>4} events, "
                    f"{result.added} added, {result.updated} updated, {result.deleted} deleted"
                )
        incremental = snapshot_digest(snapshot_path)

        console.print(Rule("6. rebuild a second snapshot from zero"))
        rebuilt = rebuild(store, workdir / "rebuilt", deltas)
        console.print(f"  {workdir / 'rebuilt'}: {rebuilt.applied} events in one pass")

        console.print(Rule("7. the two snapshots are the same function of the log"))
        console.print(f"  incremental  {incremental.digest}  at {incremental.position}")
        console.print(f"  rebuilt      {rebuilt.digest}  at {rebuilt.position}")
        if incremental.digest != rebuilt.digest:
            fail("the digests differ", EXIT_CHECK_FAILED)
        console.print("  [green]equal[/]", highlight=False)

        console.print(Rule("8. verify the snapshot against a fresh rebuild"))
        verdict = verify(store, snapshot_path, deltas)
        console.print(
            f"  ok={verdict.ok} at position {verdict.position}: "
            f"{verdict.counts['lines']} lines, {verdict.counts['words']} words"
        )
        if not verdict.ok:
            fail(f"verify found {verdict.differing_records} differing records", EXIT_CHECK_FAILED)

        console.print(Rule("9. a similarity query on the words collection"))
        _query(snapshot_path)
    console.print(
        f"\nTry: receipt-events status --store {store_url} --snapshot-dir {snapshot_path}\n"
        f"     receipt-events log --store {store_url} --limit 5 --json"
    )


def _query(snapshot_path: Path) -> None:
    """Nearest neighbours of a validated word, with the metadata the projection maintains."""
    from projections.snapshot_dir import open_snapshot

    with open_snapshot(snapshot_path, create=False) as snapshot:
        words = snapshot.chroma.collection("words")
        probe = words.get(
            where={"label_status": "validated"}, limit=1, include=["embeddings", "documents"]
        )
        if not probe["ids"]:
            probe = words.get(limit=1, include=["embeddings", "documents"])
        if not probe["ids"]:
            console.print("  (no words in the snapshot)")
            return
        found = words.query(
            query_embeddings=[cast(Any, probe["embeddings"])[0]],
            n_results=5,
            include=["documents", "metadatas", "distances"],
        )
    console.print(f"  query: the embedding of {probe['ids'][0]} ({probe['documents'][0]!r})")  # type: ignore[index]
    for record_id, document, metadata, distance in zip(
        found["ids"][0],
        found["documents"][0],  # type: ignore[index]
        found["metadatas"][0],  # type: ignore[index]
        found["distances"][0],  # type: ignore[index]
        strict=True,
    ):
        shown = {
            key: metadata[key]
            for key in ("merchant_name", "label_status", "valid_labels", "invalid_labels")
            if key in metadata
        }
        console.print(
            f"  {distance:6.3f}  {document!r:<14} {record_id}\n          {shown}", highlight=False
        )


def _prepare(workdir: Path) -> None:
    """Create the work directory, or clear what an earlier demo left there."""
    if workdir.exists() and any(workdir.iterdir()) and not (workdir / DEMO_MARKER).exists():
        fail(f"{workdir} exists and was not made by the demo; pass --workdir with a new directory")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / DEMO_MARKER).touch()
    for name in DEMO_ENTRIES:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
