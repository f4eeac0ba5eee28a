"""The context object Lambda hands a function, with what the handlers read from it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]  # a Lambda handler: (event, context) → response


@dataclass
class LambdaContext:
    """A stand-in for the runtime's context: a fresh request id per invocation, as on AWS."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1024

    def get_remaining_time_in_millis(self) -> int:
        return 300_000
