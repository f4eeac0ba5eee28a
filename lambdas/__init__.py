"""AWS Lambda handlers (``stream_processor``, ``projector``): routing, failure reports, metrics."""
