"""Which embedding model made a delta's vectors: its provenance.

Chroma's own record of this is the collection configuration's embedding function (a name and
its config, e.g. ``openai`` with ``{"model_name": "text-embedding-3-small"}``): a producer that
creates the delta's collection with the function it embedded with has said which model it used,
in the form every Chroma client reads. The projection keeps one provenance per collection and
holds back a delta whose model differs (see ``projections/fold.py``).

A delta whose collection names no function, or one that records nothing (Chroma's ``default``,
written whenever a producer passes explicit vectors without naming a function, as the old
system did; this product's fail-closed ``receipt-events-no-embeddings``), has *unknown*
provenance: it is accepted, and ``status`` says so.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

UNKNOWN = "unknown"
# embedding-function names that say nothing about the vectors a producer wrote
_SAYS_NOTHING = frozenset({"default", "legacy", "receipt-events-no-embeddings"})


class Provenance(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An embedding function's name and config, as recorded in a collection's configuration."""

    function: str = UNKNOWN
    config: dict[str, Any] = {}

    @property
    def known(self) -> bool:
        return self.function != UNKNOWN

    @property
    def model(self) -> str:
        """The model the function ran: its config's ``model_name`` (Chroma's functions name
        it so), ``model`` or, failing both, nothing beyond the function's name."""
        for key in ("model_name", "model"):
            value = self.config.get(key)
            if isinstance(value, str) and value:
                return value
        return ""

    @property
    def label(self) -> str:
        """For people: ``openai text-embedding-3-small``, ``unknown``."""
        return f"{self.function} {self.model}".strip()

    def same_model(self, other: Provenance) -> bool:
        """Whether vectors of ``self`` and ``other`` belong in one collection: the same
        function and model (other config, such as an API key variable, may differ)."""
        return (self.function, self.model) == (other.function, other.model)


def provenance_from_configuration(configuration: dict[str, Any] | None) -> Provenance:
    """The provenance a Chroma collection configuration (``configuration_json``) records."""
    function = (configuration or {}).get("embedding_function")
    if not isinstance(function, dict):
        return Provenance()
    name = function.get("name")
    if function.get("type") != "known" or not isinstance(name, str) or name in _SAYS_NOTHING:
        return Provenance()
    config = function.get("config")
    return Provenance(function=name, config=_canonical(config if isinstance(config, dict) else {}))


def _canonical(config: dict[str, Any]) -> dict[str, Any]:
    """The config with sorted keys and JSON values only, so that it compares and stores stably."""
    decoded: dict[str, Any] = json.loads(json.dumps(config, sort_keys=True, default=str))
    return decoded


def encode_provenance(provenance: Provenance) -> str:
    return msgspec.json.encode(provenance, order="sorted").decode()


def decode_provenance(text: str | None) -> Provenance | None:
    return None if text is None else msgspec.json.decode(text, type=Provenance)
