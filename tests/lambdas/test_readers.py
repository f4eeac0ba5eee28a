"""``open_fresh`` for query services: the published snapshot plus the log's tail, so a reader
sees changes the projector has not published yet; ``query_fresh``, a similarity query on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from projections.compaction import compact
from projections.errors import QueryError
from projections.query import query_snapshot
from projections.readers import open_fresh, query_fresh
from projections.restore import restore
from receipt_chroma.deltas import LocalDeltaSource
from receipt_chroma.digest import dump
from receipt_chroma.lease import leases_for
from receipt_chroma.snapshots import open_snapshot_store
from receipt_events.store import open_store
from synthetic.deltas import run_records
from tests.lambdas.checks import assert_matches_table, dump_snapshot, metadata_of
from tests.projection.helpers import OTHER_IMAGE, Log
from tests.support.lambda_pipeline import DIMENSION, STORES, Pipeline
from tests.support.model_snapshots import (
    BAKERY,
    BAKERY_TOTAL,
    GROCER,
    GROCER_TOTAL,
    require_model,
    write_run,
)
from tests.support.receipt_table import final_keys


def _last_label_change_of_an_embedded_word(pipeline: Pipeline) -> tuple[int, str]:
    """The history index of the last label MODIFY of a word that was embedded before it and is
    still there at the end, and that word's Chroma id."""
    history = pipeline.history
    final = final_keys(history)
    embedded: set[str] = set()
    found = None
    for index, (record, intent) in enumerate(zip(history.records, history.intents, strict=True)):
        pk, sk = (record["dynamodb"]["Keys"][k]["S"] for k in ("PK", "SK"))
        if intent == "run_insert":
            run_id = record["dynamodb"]["NewImage"]["run_id"]["S"]
            [run] = [run for run in history.runs if run.run_id == run_id]
            embedded |= {r.id for r in run_records(run, DIMENSION)["words"]}
        word_sk = "#".join(sk.split("#")[:6])
        if intent == "label_modify" and (pk, word_sk) in final and f"{pk}#{word_sk}" in embedded:
            found = (index, f"{pk}#{word_sk}")
    assert found is not None, "the history has no label change of an embedded word"
    return found


@pytest.mark.parametrize("pipeline", STORES, indirect=True)  # open_fresh on each store URL
def test_open_fresh_includes_changes_published_after_the_snapshot(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    split, word = _last_label_change_of_an_embedded_word(pipeline)
    pipeline.write(0, split)  # everything before that label change...
    pipeline.deliver()
    assert pipeline.project(pipeline.queue.receive_event()) == {"batchItemFailures": []}
    snapshots = open_snapshot_store(pipeline.snapshots_url)
    pointer, _ = snapshots.pointer()
    assert pointer is not None
    pipeline.write(split)  # ...then the rest, ingested but not projected
    pipeline.deliver()
    head = pipeline.store().head()
    assert head > pointer.position

    chroma = open_fresh(
        pipeline.snapshots_url,
        pipeline.store_url,
        workdir=tmp_path / "reader",
        deltas=pipeline.deltas_url,
    )
    try:
        found = chroma.collection("words").get(ids=[word], include=["metadatas"])
        fresh = dump(chroma)
    finally:
        chroma.close()

    expected = assert_matches_table(fresh, pipeline)  # current with the table, to the head
    assert found["ids"] == [word]
    assert found["metadatas"] is not None
    assert found["metadatas"][0] == expected["words"][word].metadata
    restore(snapshots, tmp_path / "published")
    published = dump_snapshot(tmp_path / "published")
    assert metadata_of(published, "words", word) != expected["words"][word].metadata
    assert open_snapshot_store(pipeline.snapshots_url).pointer()[0] == pointer  # read only


def test_query_fresh_finds_records_published_after_the_snapshot(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A receipt embedded (by the local model) after the last publish is found by a query on
    the fresh collections, not on the published snapshot; the snapshot store is only read."""
    require_model()
    store = open_store(sqlite_url)
    log, deltas, snapshots_url = Log(store), tmp_path / "deltas", str(tmp_path / "snapshots")
    log.add(
        write_run(log, deltas, "run-grocer", lines=GROCER["lines"], words=GROCER["words"]),
        log.place(merchant_name="Corner Grocer"),
        log.label(3, 2, "GRAND_TOTAL", "VALID"),
    )
    snapshots = open_snapshot_store(snapshots_url)
    leases = leases_for(snapshots_url, None)
    published = compact(store, snapshots, leases, LocalDeltaSource(deltas), tmp_path / "compactor")
    assert published.published
    log.add(  # embedded and labelled after the publish: only in the log's tail
        write_run(
            log,
            deltas,
            "run-bakery",
            image=OTHER_IMAGE,
            lines=BAKERY["lines"],
            words=BAKERY["words"],
        ),
        log.label(3, 1, "GRAND_TOTAL", "VALID", image=OTHER_IMAGE),
    )

    found = query_fresh(
        snapshots_url, sqlite_url, "total", workdir=tmp_path / "reader", deltas=str(deltas), n=3
    )
    assert found.position == store.head() > published.position
    assert {hit.id for hit in found.results[:2]} == {GROCER_TOTAL, BAKERY_TOTAL}
    assert [hit.document for hit in found.results[:2]] == ["TOTAL", "TOTAL"]
    labelled = query_fresh(
        snapshots,
        store,
        "grand total",
        workdir=tmp_path / "reader",  # the copy made by the first call, caught up again
        deltas=LocalDeltaSource(deltas),
        collection="words",
        n=10,
        where={"valid_labels": {"$contains": "GRAND_TOTAL"}},
    )
    assert sorted(hit.id for hit in labelled.results) == sorted([GROCER_TOTAL, BAKERY_TOTAL])
    lines = query_fresh(
        snapshots_url,
        sqlite_url,
        "bread",
        workdir=tmp_path / "reader",
        deltas=str(deltas),
        collection="lines",
        n=1,
    )
    assert [hit.document for hit in lines.results] == ["BREAD 3.10"]

    restore(snapshots, tmp_path / "published")  # what the published snapshot alone answers
    stale = query_snapshot(tmp_path / "published", "total", n=3)
    assert BAKERY_TOTAL not in {hit.id for hit in stale.results}
    pointer, _ = open_snapshot_store(snapshots_url).pointer()
    assert pointer is not None
    assert pointer.key == published.key  # read only
    store.close()


def test_query_fresh_refuses_collections_of_an_unknown_model(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The pipeline's producers write stand-in vectors that record no model: a service asking
    for a query gets the reason, not distances against vectors of who knows what."""
    pipeline.write()
    pipeline.deliver()
    assert pipeline.project(pipeline.queue.receive_event()) == {"batchItemFailures": []}
    with pytest.raises(QueryError, match=r"unknown model \(32-d; its deltas recorded no"):
        query_fresh(
            pipeline.snapshots_url,
            pipeline.store_url,
            "total",
            workdir=tmp_path / "reader",
            deltas=pipeline.deltas_url,
        )
