"""Seeded synthetic DynamoDB stream histories, shaped exactly like the records AWS delivers.

The demo, the tests and the benchmarks need a stream that looks like production: many
receipts in flight on one timeline, full item images typed like the real entities, noise the
pipeline must skip, MODIFYs that change nothing it reads, cascading deletes, re-embeds, lock
traffic and Lambda redeliveries. :func:`generate_history` simulates the writers of the old
system (OCR upload, merchant resolution, embedding runs, label suggestion and validation,
edits, deletes, the compactor's lock) against an in-memory table and records every change as
a NEW_AND_OLD_IMAGES stream record, so each MODIFY/REMOVE carries the item's true previous
image. Everything comes from one ``random.Random(seed)`` and a simulated clock: the same
config gives byte-identical :func:`to_jsonl` output in any process.

Every record comes with an *intent*, what the generator meant it to be (:data:`INTENTS`,
tabled in ``intents``); :data:`INTENT_OUTCOMES` says what ingesting each must give and
:data:`EVENT_INTENTS` are the intents that become an event. :func:`corrupt_lines` damages a
JSON Lines export in the ways real inputs break, for the parking path.

Modules: ``config`` (:class:`HistoryConfig`), ``model`` (what a history holds), ``intents``,
``reference`` (merchants, labels), ``ids`` (ids and keys), ``values`` (attribute values),
``stream`` (the simulated table and its records), ``printed`` (a receipt's text), the writers
``ocr``, ``labels``, ``places``, ``embeddings``, ``edits`` over ``receipt_state``, sequenced
by ``receipt``; ``locks``, ``redeliveries``, ``generate`` (the entry point), ``sizing``
(:func:`config_for_records`), ``jsonl`` (:func:`to_jsonl`) and ``corrupt``. Import from
this package: the modules are its layout, not its interface.
"""

from __future__ import annotations

from synthetic.history.config import HistoryConfig
from synthetic.history.corrupt import CORRUPTIONS, corrupt_lines
from synthetic.history.generate import generate_history
from synthetic.history.intents import EVENT_INTENTS, INTENT_OUTCOMES, INTENTS
from synthetic.history.jsonl import to_jsonl
from synthetic.history.model import History, LineContent, RunContent, WordContent
from synthetic.history.reference import LABELS
from synthetic.history.sizing import config_for_records
from synthetic.history.stream import ACCOUNT_ID, STREAM_LABEL

__all__ = [
    "ACCOUNT_ID",
    "CORRUPTIONS",
    "EVENT_INTENTS",
    "INTENTS",
    "INTENT_OUTCOMES",
    "LABELS",
    "STREAM_LABEL",
    "History",
    "HistoryConfig",
    "LineContent",
    "RunContent",
    "WordContent",
    "config_for_records",
    "corrupt_lines",
    "generate_history",
    "to_jsonl",
]
