"""The names the projection's metadata rules speak of, spelled once for both test oracles.

The two oracles (:mod:`tests.support.expected_projection`, from the table's items, and
:mod:`tests.properties.model`, from the events) take these from here, never from
``projections/``: a wrong name in the product must not be copied into what checks it. The
rules themselves are in docs/projection.md.
"""

from __future__ import annotations

# The six place fields: a place item's fields, and the metadata keys every record of its
# receipt gets from the receipt's place (absent when the value is missing or empty).
PLACE_KEYS: tuple[str, ...] = (
    "merchant_name",
    "canonical_merchant_name",
    "merchant_category",
    "address",
    "phone_number",
    "place_id",
)

# The label keys a word record gets from the word's label items (lines have no labels).
LABEL_KEYS: tuple[str, ...] = (
    "valid_labels",
    "invalid_labels",
    "label_status",
    "label_proposed_by",
    "label_validated_at",
)

# A label item's validation_status values that the rules distinguish (a missing or empty
# status reads as NONE; NONE and NEEDS_REVIEW count as neither valid, invalid nor pending).
VALID = "VALID"
INVALID = "INVALID"
PENDING = "PENDING"
NO_STATUS = "NONE"

# label_status: validated if any label is VALID, else auto_suggested if any is PENDING,
# else unvalidated.
VALIDATED = "validated"
AUTO_SUGGESTED = "auto_suggested"
UNVALIDATED = "unvalidated"


def owned_keys(collection: str) -> tuple[str, ...]:
    """The metadata keys the projection derives on a record of ``collection``: a delta's own
    copy of one is never kept. A lines delta's label keys are ordinary delta metadata."""
    return PLACE_KEYS + (LABEL_KEYS if collection == "words" else ())
