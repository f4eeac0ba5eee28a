"""A table to adopt, with writes racing the backfill: the harness of the backfill tests.

A synthetic history is cut in two: the first part is the table's past (written before the
stream is followed: its stream records are read and dropped, as if the stream processor was
deployed after them), the second part is written by another thread *while* the backfill runs,
and a pump thread hands the stream to the stream Lambda handler as the event source mapping
would. Everything runs over HTTP on DynamoDB Local.
"""

from __future__ import annotations

import base64
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import lambdas.stream_processor
from receipt_chroma.client import open_chroma
from receipt_chroma.digest import dump
from receipt_events.events import BackfillSource, EmbeddingsAdopted, EventSource
from receipt_events.markers import MARKER_PK, MarkerSeen
from receipt_events.store import EventStore
from synthetic.history import History, HistoryConfig, generate_history
from tests.support.expected_projection import assert_records_match, expected_projection
from tests.support.receipt_table import ReceiptTable
from tests.support.s3_deltas import write_local_deltas
from tests.support.stream_reader import StreamReader

DIMENSION = 16
# Removals of lines, words and receipts are kept out of the table's past: a backfill cannot
# know about a word removed before the stream was followed (docs/backfill.md, "limits").
PAST_LEFT_OUT = {"word_remove", "line_remove", "receipt_remove"}


def adoption_history(seed: int, delta_root: Path, receipts: int = 6) -> History:
    return generate_history(
        HistoryConfig(
            seed=seed,
            receipts=receipts,
            lines_per_receipt=(2, 4),
            words_per_line=(1, 3),
            letters_per_word=(0, 1),
            removal_rate=0.3,
            redelivery_rate=0.0,
            delta_root=str(delta_root),
        )
    )


@dataclass
class Adoption:
    """The table, its history cut at ``cut``, and the threads that race the backfill."""

    table: ReceiptTable
    history: History
    reader: StreamReader
    cut: int
    rng: random.Random
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def create(
        cls, aws: Any, client: Any, name: str, *, seed: int, deltas: Path, receipts: int = 6
    ) -> Adoption:
        history = adoption_history(seed, deltas, receipts)
        write_local_deltas(
            history.runs, deltas, dimension=DIMENSION, layout_of=lambda i: "directory"
        )
        table = ReceiptTable.create(client, name)
        rng = random.Random(seed)
        cut = int(len(history.records) * rng.uniform(0.4, 0.7))
        table.write_records(
            history, (i for i in range(cut) if history.intents[i] not in PAST_LEFT_OUT)
        )
        reader = StreamReader(
            aws.client("dynamodbstreams"), table.stream_arn, region=aws.region, limit=50
        )
        reader.deliver(lambda event, context: None)  # the past: never seen by the log
        return cls(table, history, reader, cut, rng)

    # -- the racing threads ------------------------------------------------------------

    def start_pump(self) -> None:
        """Hand the stream to the stream processor continuously (the event source mapping)."""
        self._spawn(self._pump, "pump")

    def start_writes(self, seconds: float) -> None:
        """Write the rest of the history, spread over about ``seconds``."""
        self._spawn(lambda: self._write(seconds), "writer")

    def _spawn(self, target: Any, name: str) -> None:
        def guarded() -> None:
            try:
                target()
            except BaseException as error:  # reported by finish()
                self.errors.append(error)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _pump(self) -> None:
        while not self._stop.is_set():
            self.reader.deliver(lambdas.stream_processor.handler)
            time.sleep(0.05)

    def _write(self, seconds: float) -> None:
        rest = range(self.cut, len(self.history.records))
        pause = seconds / max(len(rest), 1)
        for index in rest:
            self.table.write_records(self.history, [index])
            time.sleep(self.rng.uniform(0, 2 * pause))

    def wait_for_writes(self) -> None:
        for thread in self._threads:
            if thread.name == "writer":
                thread.join()

    def drain(self, store: EventStore, timeout: float = 30.0) -> None:
        """Wait until the stream processor has ingested every write made so far (a marker
        written now is seen after them: DynamoDB Local streams a table through one shard)."""
        name = f"DRAIN#{uuid.uuid4().hex}"
        self.table.client.put_item(
            TableName=self.table.name, Item={"PK": {"S": MARKER_PK}, "SK": {"S": name}}
        )
        deadline = time.monotonic() + timeout
        while not any(
            isinstance(entry, MarkerSeen) and entry.marker == name
            for _, entry in store.progress_after(0)
        ):
            assert time.monotonic() < deadline, "the stream did not drain"
            time.sleep(0.05)

    def finish(self) -> None:
        """Stop the pump, then drain the stream into the log; raise what a thread raised."""
        self.wait_for_writes()
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.reader.deliver(lambdas.stream_processor.handler)
        if self.errors:
            raise self.errors[0]


# -- checks on the log --------------------------------------------------------------------


def covering_keys(event: Any) -> list[str]:
    """The items whose event speaks for this one (itself, and removals above it)."""
    pk = event.pk
    keys = [f"{pk}|{event.sk}", f"{pk}|{event.receipt.sk}"]
    if hasattr(event, "word"):
        keys += [f"{pk}|{event.word.sk}", f"{pk}|{event.word.sk.rsplit('#WORD#', 1)[0]}"]
    return keys


def reverted_items(store: EventStore) -> list[str]:
    """Backfilled events that follow a streamed event of their item (or a removal above it).

    SPEC §11's invariant says there are none.
    """
    streamed_before: set[str] = set()
    found: list[str] = []
    for recorded in store.iter_events():
        event = recorded.event
        if isinstance(event.source, EventSource):
            streamed_before.add(f"{event.pk}|{event.sk}")
            continue
        assert isinstance(event.source, BackfillSource)
        if isinstance(event, EmbeddingsAdopted):
            continue  # decided per receipt by the projection
        keys = covering_keys(event)
        if any(key in streamed_before for key in keys):
            found.append(f"{recorded.position}: {keys[0]}")
    return found


def events_per_item(store: EventStore) -> dict[str, list[str]]:
    """Item → the origins of its events, in log order."""
    origins: dict[str, list[str]] = defaultdict(list)
    for recorded in store.iter_events():
        event = recorded.event
        origins[f"{event.pk}|{event.sk}"].append(
            "stream" if isinstance(event.source, EventSource) else "backfill"
        )
    return origins


# -- checks on the snapshot and helpers ---------------------------------------------


def assert_snapshot_matches_table(snapshot: Path, adoption: Adoption) -> None:
    """The rebuilt collections hold exactly what the table implies (docs/projection.md)."""
    with open_chroma(snapshot / "chroma", create=False) as chroma:
        found = {name: {r.id: r for r in records} for name, records in dump(chroma).items()}
    expected = expected_projection(adoption.table, adoption.history.runs, dimension=DIMENSION)
    assert_records_match(found, expected)


def as_json_item(item: dict[str, Any]) -> dict[str, Any]:
    """A low-level client's item as an export writes it (binary values in base64)."""

    def wire(value: Any) -> Any:
        (tag, inner), *_ = value.items()
        if tag == "B":
            return {"B": base64.b64encode(inner).decode()}
        if tag == "L":
            return {"L": [wire(member) for member in inner]}
        if tag == "M":
            return {"M": {name: wire(member) for name, member in inner.items()}}
        return {tag: inner}

    return {name: wire(value) for name, value in item.items()}


def past_runs(adoption: Adoption) -> list[Any]:
    """The runs whose items are in the table's past, in the order they were written."""
    inserted = [
        index for index in range(adoption.cut) if adoption.history.intents[index] == "run_insert"
    ]
    run_ids = [
        adoption.history.records[index]["dynamodb"]["NewImage"]["run_id"]["S"] for index in inserted
    ]
    by_id = {run.run_id: run for run in adoption.history.runs}
    return [by_id[run_id] for run_id in run_ids]


def write_old_snapshot(adoption: Adoption, root: Path, *, layout: str) -> None:
    """What the old system's snapshot holds after merging the past's runs in order.

    ``layout``: ``directory`` (one Chroma directory with both collections) or ``old`` (the old
    system's ``<collection>/snapshot/timestamped/<version>/`` with a latest pointer).
    """
    from synthetic.deltas import run_records

    merged: dict[str, dict[str, Any]] = {"lines": {}, "words": {}}
    for run in past_runs(adoption):
        for collection, records in run_records(run, DIMENSION).items():
            for record in records:
                merged[collection][record.id] = record
    version = "20251215_174512"
    for collection, records in merged.items():
        path = (
            root
            if layout == "directory"
            else root / collection / "snapshot" / "timestamped" / version
        )
        with open_chroma(path, create=True) as chroma:
            target = chroma.collection(collection)  # type: ignore[arg-type]
            ordered = sorted(records.values(), key=lambda r: r.id)
            if ordered:
                target.upsert(
                    ids=[r.id for r in ordered],
                    embeddings=np.stack([r.vector() for r in ordered]),
                    documents=[r.document or "" for r in ordered],
                    metadatas=[dict(r.metadata) for r in ordered],
                )
        if layout == "old":
            (root / collection / "snapshot" / "latest-pointer.txt").write_text(version)


def upload_tree(s3: Any, root: Path, bucket: str, prefix: str) -> str:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")
    return f"s3://{bucket}/{prefix}"
