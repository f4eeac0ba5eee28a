"""receipt-events: DynamoDB stream records as a typed, replayable, idempotent event log.

Light by design (msgspec, eventsourcing, stdlib): the stream Lambda imports this package, so
it never imports chromadb. Data flows attributes → keys → records → changes → events →
store → ingest; ``cli`` is the command line.
"""

__version__ = "0.2.0"
