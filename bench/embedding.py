"""The local embedding model: load time, texts/s on receipt lines and words, determinism.

    .venv/bin/python bench/embedding.py            # 5,000 lines, 8,000 words (about a minute)
    .venv/bin/python bench/embedding.py --quick    # 500 lines, 1,000 words

*load*: the first ``embed`` call after ``receipt_chroma.minilm._model.cache_clear()``: the
weights' sha256 check, the onnxruntime session, the tokenizer and one one-word batch (and the
``onnxruntime`` import, if this process has not made it yet: reported as ``ort_imported``).
*lines/s*, *words/s*: ``MiniLmEmbeddingFunction().embed`` on the line and word texts of a
seeded synthetic history (``synthetic.history``, every run's lines and words, as a producer
embeds them), one call each, after the load.
*baseline*: Chroma's own ONNX function's padding policy (``ONNXMiniLM_L6_V2`` pads every text
to 256 tokens), measured here on the same session, pooling and batching with a copy of the
tokenizer that pads to 256, on a smaller sample of the same words; ``length_batching_speedup``
= our words/s ÷ its words/s (goal: none; it is why the model pads per batch), and
``max_abs_diff_fixed256`` how far its vectors are from ours (the padding is masked out).
*determinism*: the same 500 lines embedded twice in the same order (``repeat_identical``: are
the bytes equal), then shuffled (``max_abs_diff_reordered``: the largest difference of any
component once put back in order: a text's batch, and so its padding, change with the order).
Either can move a vector's last bits; vectors are computed once and carried in deltas anyway.
onnxruntime uses its default threads; ``cpu_count`` and ``loadavg`` are for context. The last
line is one JSON object (also written to ``--out`` if given).
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from receipt_chroma import minilm
from receipt_chroma.minilm import MiniLmEmbeddingFunction, Vectors
from synthetic.history import HistoryConfig, generate_history

SEED = 7
FIXED_LENGTH = 256  # chromadb's ONNXMiniLM_L6_V2: enable_padding(..., length=256)
DETERMINISM_LINES = 500
LINES_PER_RECEIPT = 12  # a conservative floor: seed 7 gives ~18 (runs repeat receipts)


def receipt_texts(lines: int, words: int) -> tuple[list[str], list[str]]:
    """The first ``lines`` line texts and ``words`` word texts of a seeded history."""
    receipts = max(10, lines // LINES_PER_RECEIPT)
    history = generate_history(HistoryConfig(seed=SEED, receipts=receipts, delta_root="deltas"))
    all_lines = [line.text for run in history.runs for line in run.lines]
    all_words = [word.text for run in history.runs for word in run.words]
    if len(all_lines) < lines or len(all_words) < words:
        held = f"{len(all_lines)} lines, {len(all_words)} words"
        raise SystemExit(f"{receipts} receipts hold only {held}")
    return all_lines[:lines], all_words[:words]


def timed(embed: Callable[[Sequence[str]], Vectors], texts: Sequence[str]) -> tuple[float, Vectors]:
    started = time.perf_counter()
    vectors = embed(texts)
    return time.perf_counter() - started, vectors


def load_seconds() -> tuple[float, bool]:
    """The first embed on a cleared model cache; and whether onnxruntime was imported before."""
    imported = "onnxruntime" in sys.modules
    minilm._model.cache_clear()
    seconds, _ = timed(MiniLmEmbeddingFunction().embed, ["load"])
    return seconds, imported


def fixed_padding_embed() -> Callable[[Sequence[str]], Vectors]:
    """The loaded model with a tokenizer that pads every text to 256 tokens (Chroma's policy)."""
    from tokenizers import Tokenizer

    model = copy.copy(minilm._model())
    model.tokenizer = Tokenizer.from_str(model.tokenizer.to_str())
    model.tokenizer.enable_truncation(max_length=minilm.MAX_TOKENS)
    model.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=FIXED_LENGTH)
    return model.embed


def determinism(lines: list[str]) -> tuple[bool, float]:
    embed = MiniLmEmbeddingFunction().embed
    first, second = embed(lines), embed(lines)
    order = list(range(len(lines)))
    random.Random(SEED).shuffle(order)
    shuffled = embed([lines[i] for i in order])
    restored = np.empty_like(shuffled)
    restored[order] = shuffled
    return first.tobytes() == second.tobytes(), float(np.abs(first - restored).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 lines, 1,000 words, 64 fixed")
    parser.add_argument("--lines", type=int, help="line texts to embed (default 5,000)")
    parser.add_argument("--words", type=int, help="word texts to embed (default 8,000)")
    parser.add_argument("--fixed", type=int, help="words for the 256-token baseline (300)")
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    n_lines = args.lines or (500 if args.quick else 5_000)
    n_words = args.words or (1_000 if args.quick else 8_000)
    n_fixed = min(args.fixed or (64 if args.quick else 300), n_words)

    load_s, ort_imported = load_seconds()
    print(f"load: {load_s:.2f} s (sha256 check, session, tokenizer, one text)")
    lines, words = receipt_texts(max(n_lines, DETERMINISM_LINES), n_words)
    lines_sample = lines[:n_lines]
    embed = MiniLmEmbeddingFunction().embed
    lines_s, vectors = timed(embed, lines_sample)
    assert vectors.shape == (n_lines, minilm.DIMENSION)
    words_s, word_vectors = timed(embed, words)
    fixed_s, fixed_vectors = timed(fixed_padding_embed(), words[:n_fixed])
    fixed_diff = float(np.abs(fixed_vectors - word_vectors[:n_fixed]).max())
    lines_per_s, words_per_s = n_lines / lines_s, n_words / words_s
    fixed_per_s = n_fixed / fixed_s
    mean_chars = (sum(map(len, lines_sample)) / n_lines, sum(map(len, words)) / n_words)
    print(f"lines: {n_lines} in {lines_s:.2f} s, {lines_per_s:,.0f}/s ({mean_chars[0]:.1f} chars)")
    print(f"words: {n_words} in {words_s:.2f} s, {words_per_s:,.0f}/s ({mean_chars[1]:.1f} chars)")
    print(
        f"words padded to {FIXED_LENGTH}: {n_fixed} in {fixed_s:.2f} s, {fixed_per_s:,.0f}/s "
        f"(max abs diff from ours {fixed_diff:.3g})"
    )
    speedup = words_per_s / fixed_per_s
    print(f"length batching: {speedup:.1f}x the words/s of fixed {FIXED_LENGTH}-token padding")
    identical, reordered = determinism(lines[:DETERMINISM_LINES])
    print(
        f"{DETERMINISM_LINES} lines twice: bytes identical {identical}; "
        f"shuffled: max abs diff {reordered:.3g}"
    )
    load_avg = [round(value, 2) for value in os.getloadavg()]
    print(f"cpu_count {os.cpu_count()}, load average {load_avg}")
    result: dict[str, Any] = {
        "load_s": round(load_s, 3),
        "ort_imported": ort_imported,
        "lines": n_lines,
        "lines_per_s": round(lines_per_s, 1),
        "words": n_words,
        "words_per_s": round(words_per_s, 1),
        "fixed256_words": n_fixed,
        "fixed256_words_per_s": round(fixed_per_s, 1),
        "length_batching_speedup": round(speedup, 1),
        "max_abs_diff_fixed256": fixed_diff,
        "mean_chars": {"lines": round(mean_chars[0], 1), "words": round(mean_chars[1], 1)},
        "repeat_identical": identical,
        "max_abs_diff_reordered": reordered,
        "determinism_lines": DETERMINISM_LINES,
        "batch_size": minilm.BATCH_SIZE,
        "cpu_count": os.cpu_count(),
        "loadavg": load_avg,
    }
    encoded = msgspec.json.encode(result).decode()
    if args.out:
        args.out.write_text(encoded + "\n")
    sys.stdout.write(encoded + "\n")


if __name__ == "__main__":
    main()
