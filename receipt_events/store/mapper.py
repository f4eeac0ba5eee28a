"""Domain events ↔ the library's ``StoredEvent`` rows, encoded with msgspec.

The stock ``Mapper`` builds a dict from ``vars(event)``, which msgspec Structs do not have, so
this subclass encodes the whole Struct as JSON. It keeps the library's compressor and cipher
hooks, so a store can be compressed or encrypted without touching the events. Events stored
under an older schema version are upcast by topic (:func:`receipt_events.events.upcast`).
"""

from __future__ import annotations

from typing import Any

import msgspec
from eventsourcing.persistence import (
    Cipher,
    Compressor,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
)
from eventsourcing.utils import resolve_topic

from receipt_events.events import upcast


class MsgspecMapper(Mapper[str]):
    """Encodes a msgspec Struct having ``originator_id``, ``originator_version``, ``topic()``."""

    def __init__(self, compressor: Compressor | None = None, cipher: Cipher | None = None) -> None:
        super().__init__(transcoder=None, compressor=compressor, cipher=cipher)  # type: ignore[arg-type]
        self._encoder = msgspec.json.Encoder()
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {}

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        state = self._encoder.encode(domain_event)
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=type(domain_event).topic(),
            state=state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        decoder = self._decoders.get(stored_event.topic)
        state = stored_event.state
        try:
            if decoder is None:
                decoder = msgspec.json.Decoder(resolve_topic(stored_event.topic))
                self._decoders[stored_event.topic] = decoder
            if self.cipher:
                state = self.cipher.decrypt(state)
            if self.compressor:
                state = self.compressor.decompress(state)
            return decoder.decode(upcast(stored_event.topic, state))
        except Exception as error:
            raise MapperDeserialisationError(
                f"stored event {stored_event.originator_id!r} (topic {stored_event.topic!r}) "
                f"does not decode: {error}"
            ) from error
