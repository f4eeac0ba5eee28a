"""``open_fresh`` for query services: the published snapshot plus the log's tail, so a reader
sees changes the projector has not published yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from projections.readers import open_fresh
from projections.restore import restore
from receipt_chroma.digest import dump
from receipt_chroma.snapshots import open_snapshot_store
from synthetic.deltas import run_records
from tests.lambdas.checks import assert_matches_table, dump_snapshot, metadata_of
from tests.support.lambda_pipeline import DIMENSION, STORES, Pipeline
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
