"""Tools that make test data: never imported by the runtime packages, never in a Lambda.

``synthetic.history`` simulates the receipt table's writers and records what its DynamoDB
stream would deliver; ``synthetic.deltas`` writes the embedding deltas of that history's runs
as the embedding producers do. The command line (``generate``, ``demo``), the benchmarks and
the tests use them; ``receipt_events``, ``receipt_chroma``, ``projections`` and ``lambdas``
never import them (``tests/test_layering.py`` enforces it).
"""
