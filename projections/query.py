"""Similarity queries on a snapshot directory, embedded by the model its collection records.

A query's text must be embedded by the model that made the collection's vectors, or the
distances mean nothing; the state records that model per collection (``provenance``, from the
deltas' Chroma configuration). A collection whose model is unknown (its deltas recorded none),
or is one this install cannot run, is refused with the reason, never embedded by a guess.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import msgspec
from chromadb.errors import ChromaError

from projections.errors import QueryError
from projections.snapshot_dir import open_snapshot
from receipt_chroma.client import CollectionName
from receipt_chroma.provenance import Provenance


class WhereRefused(QueryError):
    """Chroma refused the ``where`` filter (its syntax: one condition per object, several
    combined with ``$and`` / ``$or``, operators such as ``$eq``, ``$in``, ``$contains``)."""


class QueryHit(msgspec.Struct, frozen=True):
    id: str
    document: str | None
    distance: float
    metadata: dict[str, Any]


class QueryResult(msgspec.Struct, frozen=True, kw_only=True):
    collection: str
    text: str
    model: str  # the label of the model that embedded the text
    position: int  # the snapshot's checkpoint
    where: dict[str, Any] | None
    results: list[QueryHit]


def query_snapshot(
    path: Path,
    text: str,
    *,
    collection: CollectionName = "words",
    n: int = 10,
    where: dict[str, Any] | None = None,
) -> QueryResult:
    """The ``n`` records of ``collection`` nearest to ``text`` (cosine distance), optionally
    filtered by Chroma's ``where`` syntax (``{}`` is no filter); raises :class:`QueryError`
    when it cannot embed, :class:`WhereRefused` when Chroma refuses the filter."""
    where = where or None
    with open_snapshot(path, create=False) as snapshot:
        state = snapshot.state
        model = state.provenance(collection)
        dimension = state.dimension(collection)
        embed = query_embedder(path, collection, model, dimension)
        vector = embed(text)
        if dimension is not None and len(vector) != dimension:
            raise QueryError(
                f"{path}: the {collection!r} collection holds {dimension}-d vectors, but its "
                f"recorded model ({model.label if model else 'none'}) made a "
                f"{len(vector)}-d one: its deltas recorded the wrong model"
            )
        try:
            found = snapshot.chroma.collection(collection).query(
                query_embeddings=[vector],
                n_results=n,
                where=cast(Any, where),
                include=["documents", "metadatas", "distances"],
            )
        except (ValueError, ChromaError) as error:
            if where is None:
                raise
            shown = json.dumps(where, default=str)
            raise WhereRefused(
                f"Chroma refused the filter {shown}: {error} (one condition per object, e.g. "
                '{"label_status": "validated"}; combine several with $and / $or)'
            ) from None
        position = state.checkpoint
    hits = [
        QueryHit(id=record_id, document=document, distance=float(distance), metadata=dict(meta))
        for record_id, document, meta, distance in zip(
            found["ids"][0],
            cast(list[list[str | None]], found["documents"])[0],
            cast(list[list[dict[str, Any]]], found["metadatas"])[0],
            cast(list[list[float]], found["distances"])[0],
            strict=True,
        )
    ]
    assert model is not None  # query_embedder refused otherwise
    return QueryResult(
        collection=collection,
        text=text,
        model=model.label,
        position=position,
        where=where,
        results=hits,
    )


def query_embedder(
    path: Path, collection: str, model: Provenance | None, dimension: int | None
) -> Callable[[str], Sequence[float]]:
    """A function text → vector for the collection's recorded model, or :class:`QueryError`."""
    from receipt_chroma import minilm

    if model is None:
        raise QueryError(
            f"{path}: the {collection!r} collection holds no vectors yet (no delta merged); "
            "run receipt-events project first"
        )
    if not model.known:
        raise QueryError(
            f"{path}: the {collection!r} collection's vectors were made by an unknown model "
            f"({dimension}-d; its deltas recorded no embedding function), so a query cannot be "
            "embedded to match them. Producers record the model by creating each delta's "
            "collection with the embedding function they used; rebuild from such deltas"
        )
    if not model.same_model(minilm.PROVENANCE):
        raise QueryError(
            f"{path}: the {collection!r} collection was embedded by {model.label}, which this "
            f"install cannot run (it runs {minilm.PROVENANCE.label}); embed the query with "
            f"{model.label} and query the collection with that vector"
        )
    function = minilm.MiniLmEmbeddingFunction()

    def embed(text: str) -> list[float]:
        try:
            return [float(x) for x in function.embed([text])[0]]
        except minilm.ModelUnavailable as error:
            raise QueryError(f"cannot embed the query: {error}") from None

    return embed
