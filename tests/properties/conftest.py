"""The property suite loads its hypothesis profile (``ci`` unless ``HYPOTHESIS_PROFILE``)."""

from __future__ import annotations

from tests.properties import profiles

profiles.load()
