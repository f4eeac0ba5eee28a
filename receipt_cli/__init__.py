"""The ``receipt-events`` command line on top of every package: ``app`` assembles the
commands, ``errors`` maps what they raise to messages and exit statuses, and the tool
commands (``generate``, ``demo``) drive the synthetic data generators."""
