"""Opening Chroma collections in a directory: explicit embeddings only, never a model download.

``embedding_function=None`` does not stop Chroma from falling back to its default model (which
it would try to download), so every collection gets :class:`NoEmbeddingFunction`, which refuses
to embed: a write without explicit vectors fails at once instead of reaching the network.
Collections use cosine space, set through ``configuration`` so that collection metadata stays
free for other uses.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import chromadb
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.config import Settings
from chromadb.utils.embedding_functions import register_embedding_function

CollectionName = Literal["lines", "words"]
COLLECTIONS: tuple[CollectionName, ...] = ("lines", "words")


@register_embedding_function
class NoEmbeddingFunction(EmbeddingFunction[Documents]):
    """Refuses to embed: this product only ever writes embeddings it was given."""

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents) -> Embeddings:
        raise RuntimeError(
            "receipt-events writes explicit embeddings only; something asked Chroma to embed text"
        )

    @staticmethod
    def name() -> str:
        return "receipt-events-no-embeddings"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> NoEmbeddingFunction:
        return NoEmbeddingFunction()


@functools.cache
def _base_settings() -> Settings:
    return Settings(anonymized_telemetry=False, is_persistent=True)


def settings() -> Settings:
    """Fresh client settings. Building ``Settings`` reads the environment through pydantic
    (~30 ms); a copy of one built once is nearly free, and a copy is needed because
    ``PersistentClient`` writes the directory into the object it is given."""
    return _base_settings().model_copy()


class ChromaDirectory:
    """A ``PersistentClient`` on one directory, with its ``lines`` and ``words`` collections.

    ``create=True`` is for directories this product writes (collections are created with
    :class:`NoEmbeddingFunction` and cosine space); ``create=False`` is for reading an existing
    directory (a delta, a rebuilt snapshot) and never writes to it. A producer writing a delta
    passes the ``embedding_function`` that made its vectors: the collection's configuration
    then records the model (:mod:`receipt_chroma.provenance`).
    """

    def __init__(
        self,
        path: Path,
        *,
        create: bool,
        embedding_function: EmbeddingFunction[Documents] | None = None,
    ) -> None:
        self.path = path
        if not create and not (path / "chroma.sqlite3").exists():
            raise FileNotFoundError(f"{path} holds no Chroma database (chroma.sqlite3)")
        path.mkdir(parents=True, exist_ok=True)
        self.client: ClientAPI = chromadb.PersistentClient(path=str(path), settings=settings())
        self._collections: dict[str, Collection] = {}
        self._create = create
        self._embedding_function = embedding_function or NoEmbeddingFunction()

    def collection(self, name: CollectionName) -> Collection:
        found = self._collections.get(name)
        if found is None:
            if self._create:
                found = self.client.get_or_create_collection(
                    name,
                    embedding_function=self._embedding_function,  # type: ignore[arg-type]
                    configuration={"hnsw": {"space": "cosine"}},
                )
            else:
                # Read-only: accept whatever embedding function the producer persisted (the old
                # system's deltas carry Chroma's default one). Passing ours would be refused as
                # a conflict; passing none is safe because reads never embed.
                found = self.client.get_collection(name, embedding_function=None)
            self._collections[name] = found
        return found

    def has_collection(self, name: str) -> bool:
        return name in {collection.name for collection in self.client.list_collections()}

    def max_batch_size(self) -> int:
        return int(self.client.get_max_batch_size())

    def close(self) -> None:
        self._collections.clear()
        self.client.close()  # type: ignore[attr-defined]

    def __enter__(self) -> ChromaDirectory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_chroma(
    path: Path,
    *,
    create: bool = True,
    embedding_function: EmbeddingFunction[Documents] | None = None,
) -> ChromaDirectory:
    return ChromaDirectory(path, create=create, embedding_function=embedding_function)
