"""What the generator means each record to be, and what ingesting it must give.

Kept apart so the tests can check ingest against the generator's own statement of intent.
Every record comes with an *intent*, what the generator meant it to be (:data:`INTENTS`):

=========================== =================================================================
``image``                   IMAGE item INSERT (skipped, kind ``IMAGE``)
``receipt_insert``          RECEIPT INSERT (skipped, ``RECEIPT``)
``line_insert``             RECEIPT_LINE INSERT (skipped, ``RECEIPT_LINE``)
``word_insert``             RECEIPT_WORD INSERT (skipped, ``RECEIPT_WORD``)
``letter_insert``           RECEIPT_LETTER INSERT (skipped, ``RECEIPT_LETTER``)
``word_modify_noise``       word ``embedding_status`` MODIFY (skipped, ``RECEIPT_WORD``)
``place_insert``            RECEIPT_PLACE / RECEIPT_METADATA INSERT → ``PlaceChanged``
``place_modify``            place MODIFY of a relevant field → ``PlaceChanged``
``place_modify_irrelevant`` place MODIFY of validated_by / matched_fields / timestamp /
                            validation_status / confidence only → unchanged
``place_remove``            place REMOVE → ``PlaceRemoved``
``label_insert``            word label INSERT (PENDING) → ``WordLabelSet``
``label_modify``            label status MODIFY → ``WordLabelSet``
``label_modify_irrelevant`` label MODIFY adding only GSI4 keys (a backfill) → unchanged
``label_remove``            label REMOVE → ``WordLabelRemoved``
``run_insert``              COMPACTION_RUN INSERT → ``EmbeddingsPublished``
``run_status_modify``       run state MODIFY (PROCESSING, COMPLETED) (skipped,
                            ``COMPACTION_RUN``)
``run_remove``              run REMOVE in a receipt delete (skipped, ``COMPACTION_RUN``)
``letter_remove``           RECEIPT_LETTER REMOVE (skipped, ``RECEIPT_LETTER``)
``word_remove``             RECEIPT_WORD REMOVE → ``WordRemoved``
``line_remove``             RECEIPT_LINE REMOVE → ``LineRemoved``
``receipt_remove``          RECEIPT REMOVE, last of its cascade → ``ReceiptRemoved``
``lock``                    compaction lock INSERT / heartbeat MODIFY / REMOVE (skipped,
                            ``LOCK``)
``redelivery``              an exact copy of an earlier record (same eventID): a duplicate
=========================== =================================================================

:data:`INTENT_OUTCOMES` states the same table as data; :data:`EVENT_INTENTS` are the intents
that become an event.
"""

from __future__ import annotations

from typing import Final

INTENTS: Final[tuple[str, ...]] = (
    "image",
    "receipt_insert",
    "line_insert",
    "word_insert",
    "letter_insert",
    "word_modify_noise",
    "place_insert",
    "place_modify",
    "place_modify_irrelevant",
    "place_remove",
    "label_insert",
    "label_modify",
    "label_modify_irrelevant",
    "label_remove",
    "run_insert",
    "run_status_modify",
    "run_remove",
    "letter_remove",
    "word_remove",
    "line_remove",
    "receipt_remove",
    "lock",
    "redelivery",
)

# What ingesting a record of each intent gives: an event type name, "skipped:<kind>",
# "unchanged" (a place or label MODIFY of no relevant field) or "duplicate" (for a redelivered
# event record; a redelivered skipped or unchanged record is skipped or unchanged again).
INTENT_OUTCOMES: Final[dict[str, str]] = {
    "image": "skipped:IMAGE",
    "receipt_insert": "skipped:RECEIPT",
    "line_insert": "skipped:RECEIPT_LINE",
    "word_insert": "skipped:RECEIPT_WORD",
    "letter_insert": "skipped:RECEIPT_LETTER",
    "word_modify_noise": "skipped:RECEIPT_WORD",
    "place_insert": "PlaceChanged",
    "place_modify": "PlaceChanged",
    "place_modify_irrelevant": "unchanged",
    "place_remove": "PlaceRemoved",
    "label_insert": "WordLabelSet",
    "label_modify": "WordLabelSet",
    "label_modify_irrelevant": "unchanged",
    "label_remove": "WordLabelRemoved",
    "run_insert": "EmbeddingsPublished",
    "run_status_modify": "skipped:COMPACTION_RUN",
    "run_remove": "skipped:COMPACTION_RUN",
    "letter_remove": "skipped:RECEIPT_LETTER",
    "word_remove": "WordRemoved",
    "line_remove": "LineRemoved",
    "receipt_remove": "ReceiptRemoved",
    "lock": "skipped:LOCK",
    "redelivery": "duplicate",
}
EVENT_INTENTS: Final[tuple[str, ...]] = tuple(
    intent
    for intent, outcome in INTENT_OUTCOMES.items()
    if not outcome.startswith("skipped:") and outcome not in ("unchanged", "duplicate")
)
