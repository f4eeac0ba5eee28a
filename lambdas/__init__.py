"""The two AWS Lambda handlers, and the plumbing they share.

``stream_processor`` (DynamoDB stream → append) and ``projector`` (wake-up → compaction) are
routing and one call into the packages each. The plumbing: ``triggers`` (what woke the
projector), ``invocation`` (the per-invocation log line and EMF metrics, the partial-batch
response), ``observability`` (how a log or metrics line is written), ``wakeup`` (the SQS
message that wakes the projector), ``warm_store`` (the event store kept across warm
invocations).
"""
