"""Reading what the handlers print: one JSON object a line, some of them CloudWatch EMF."""

from __future__ import annotations

import json
from typing import Any


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line printed, each of which must be one JSON object."""
    lines = []
    for line in text.splitlines():
        if not line.strip():
            continue
        document = json.loads(line)  # raises on a line that is not JSON
        assert isinstance(document, dict), line
        lines.append(document)
    return lines


def emf_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines that are EMF metric documents (they carry the ``_aws`` key)."""
    return [line for line in lines if "_aws" in line]
