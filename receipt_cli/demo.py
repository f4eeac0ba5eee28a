"""``receipt-events demo``: the whole pipeline on embedded defaults, narrated.

Generate a stream history with embedding deltas → ingest it (twice: the second time every
record is a duplicate) → project it into a snapshot directory in uneven batches → rebuild a
second snapshot from zero → the two digests are equal → verify → similarity queries.

The deltas are embedded by the local model (all-MiniLM-L6-v2, :mod:`receipt_chroma.minilm`),
so the closing queries are embedded by it too and their answers can be judged by eye.
``--fake-embeddings`` writes seeded random vectors instead (fast, for runs that only need
vectors); those record no model, so no query can be embedded for them.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.rule import Rule

from receipt_events.cli.errors import EXIT_CHECK_FAILED, fail
from receipt_events.cli.output import console
from receipt_events.cli.render import event_line, ingest_table
from receipt_events.ingest import ingest
from receipt_events.records import read_input
from receipt_events.store import open_store
from synthetic.history import HistoryConfig, corrupt_lines, generate_history, to_jsonl

if TYPE_CHECKING:
    from chromadb.api.types import Documents, EmbeddingFunction

    from projections.query import QueryHit, QueryResult
    from receipt_chroma.provenance import Provenance
    from synthetic.deltas import Matrix, Vectors

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
MODEL_DIMENSION = 384
NEAREST = 50  # records asked of each query
SHOWN = 6  # distinct texts shown of them
SHOWN_KEYS = ("merchant_name", "label_status", "valid_labels")
LABEL_QUERY = ("total", "GRAND_TOTAL")  # words near the text, with this valid label only


def demo_command(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where the demo writes its store and files.")
    ] = Path(".demo"),
    receipts: Annotated[int, typer.Option("--receipts", min=1, help="Receipts to simulate.")] = 12,
    dim: Annotated[
        int | None,
        typer.Option(
            "--dim",
            min=2,
            help="Dimension of the fake vectors (only with --fake-embeddings; default 384). "
            "The model's vectors are 384-d.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic history.")] = 7,
    fake_embeddings: Annotated[
        bool,
        typer.Option(
            "--fake-embeddings",
            help="Seeded random vectors instead of the local model: faster, but the closing "
            "queries cannot be embedded.",
        ),
    ] = False,
) -> None:
    """Run the whole pipeline on embedded defaults and show what it did."""
    if dim is not None and not fake_embeddings and dim != MODEL_DIMENSION:
        fail(
            f"--dim {dim}: the model's vectors are {MODEL_DIMENSION}-d; "
            "--dim only sets the size of --fake-embeddings"
        )

    # the projection and the delta writer load Chroma: only when the demo runs
    from projections.runner import catch_up, rebuild, snapshot_digest
    from projections.snapshot_dir import open_snapshot
    from projections.verify import verify
    from receipt_chroma.deltas import LocalDeltaSource
    from receipt_chroma.minilm import ModelUnavailable
    from synthetic.deltas import FakeVectors, ModelVectors, write_run_deltas

    vectors = _Timed(FakeVectors(dim or MODEL_DIMENSION) if fake_embeddings else ModelVectors())
    _prepare(workdir)
    stream_path = workdir / "stream.jsonl"
    store_url = f"sqlite:///{(workdir / 'events.db').resolve()}"
    deltas = LocalDeltaSource(workdir)

    console.print(Rule("1. a synthetic DynamoDB stream history, with embedding deltas"))
    history = generate_history(HistoryConfig(seed=seed, receipts=receipts, delta_root="deltas"))
    stream_path.write_bytes(corrupt_lines(to_jsonl(history.records), 3, seed))
    try:
        for index, run_content in enumerate(history.runs):
            # Both layouts, as the producers write them: every third run as delta.tar.gz.
            write_run_deltas(
                run_content,
                workdir,
                layout="tarball" if index % 3 == 2 else "directory",
                vectors=vectors,
            )
    except ModelUnavailable as error:
        fail(f"{error} (or run the demo with --fake-embeddings)")
    console.print(
        f"{len(history.records)} stream records for {receipts} receipts plus 3 malformed "
        f"records → {stream_path}\n{len(history.runs)} compaction runs, "
        f"{2 * len(history.runs)} deltas → {workdir / 'deltas'}\n{vectors.summary()}",
        highlight=False,
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

        console.print(Rule("9. similarity queries on the snapshot"))
        merchant = _queries(snapshot_path) if not fake_embeddings else None
        if fake_embeddings:
            console.print(
                "  fake embeddings: no model made these vectors, so none can embed a query; "
                "run the demo without --fake-embeddings for real answers",
                highlight=False,
            )
    tries = [
        f"receipt-events status --store {store_url} --snapshot-dir {snapshot_path}",
        f"receipt-events log --store {store_url} --limit 5 --json",
    ]
    if merchant is not None:
        query = f"receipt-events query {shlex.quote(str(snapshot_path))}"
        label_filter = json.dumps({"valid_labels": {"$contains": LABEL_QUERY[1]}})
        tries += [
            f"{query} --text {shlex.quote('grand total')}",
            f"{query} --collection lines --text {shlex.quote(merchant)}",
            f"{query} --text {LABEL_QUERY[0]} --where {shlex.quote(label_filter)}",
        ]
    console.print("\nTry: " + "\n     ".join(tries), highlight=False, soft_wrap=True)


class _Timed:
    """The demo's vectors, counting the texts embedded and the time spent embedding them."""

    def __init__(self, vectors: Vectors) -> None:
        self.vectors = vectors
        self.seconds = 0.0
        self.texts = 0

    @property
    def dimension(self) -> int:
        return self.vectors.dimension

    @property
    def provenance(self) -> Provenance:
        return self.vectors.provenance

    def summary(self) -> str:
        model = self.vectors.provenance
        if not model.known:
            return (
                f"{self.texts} texts given seeded random {self.dimension}-d vectors, no model "
                f"(--fake-embeddings), in {self.seconds:.1f} s"
            )
        return (
            f"{self.texts} texts embedded by {model.label} ({self.dimension}-d) "
            f"in {self.seconds:.1f} s, loading the model included"
        )

    def embedding_function(self) -> EmbeddingFunction[Documents] | None:
        return self.vectors.embedding_function()

    def embed(self, run_id: str, ids: Sequence[str], texts: Sequence[str]) -> Matrix:
        started = time.perf_counter()
        try:
            return self.vectors.embed(run_id, ids, texts)
        finally:
            self.seconds += time.perf_counter() - started
            self.texts += len(texts)


def _queries(snapshot_path: Path) -> str | None:
    """Three queries a person can judge; returns the merchant name queried (None: none)."""
    from projections.query import query_snapshot

    first = query_snapshot(snapshot_path, "grand total", collection="words", n=NEAREST)
    console.print(f"  each query embedded by {first.model}, as the deltas were", highlight=False)
    _show(first)
    merchant = _merchant(snapshot_path)
    if merchant is not None:
        _show(query_snapshot(snapshot_path, merchant, collection="lines", n=NEAREST))
    text, label = LABEL_QUERY
    where: dict[str, Any] = {"valid_labels": {"$contains": label}}
    _show(query_snapshot(snapshot_path, text, collection="words", n=NEAREST, where=where))
    return merchant


def _merchant(snapshot_path: Path) -> str | None:
    """The merchant name (as the place data names it) on the most lines of the snapshot."""
    from projections.snapshot_dir import open_snapshot

    with open_snapshot(snapshot_path, create=False) as snapshot:
        found = snapshot.chroma.collection("lines").get(include=["metadatas"])
    names = Counter(
        str(metadata["merchant_name"])
        for metadata in found["metadatas"] or []
        if metadata.get("merchant_name")
    )
    if not names:
        return None
    return min(names, key=lambda name: (-names[name], name))


def _show(result: QueryResult) -> None:
    """The nearest records grouped by text (receipts repeat words such as TOTAL, and equal
    texts have equal vectors): per text, its distance, how many of the nearest records carry
    it, and the nearest one's metadata and id."""
    where = f" where {json.dumps(result.where)}" if result.where else ""
    console.print(
        f"  {result.collection} nearest {result.text!r}{where} "
        f"({len(result.results)} nearest records, grouped by text):",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    groups: dict[str | None, list[QueryHit]] = {}
    for hit in result.results:
        groups.setdefault(hit.document, []).append(hit)
    if not groups:
        console.print("    (nothing matches)")
    for document, hits in list(groups.items())[:SHOWN]:
        nearest = hits[0]
        shown = ", ".join(
            f"{key}={nearest.metadata[key]}" for key in SHOWN_KEYS if key in nearest.metadata
        )
        console.print(
            f"    {nearest.distance:5.3f}  {document!r:<26} {len(hits):>2}x  {shown}\n"
            f"                 {nearest.id}",
            highlight=False,
            soft_wrap=True,
            markup=False,
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
