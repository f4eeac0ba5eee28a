"""One Lambda invocation in a process of its own: a container with its own environment,
module state and /tmp, as two concurrent invocations of a function have on AWS.

Usage: ``python -m tests.lambdas.invoke MODULE EVENT_JSON_FILE RESULT_FILE``. The handler's
module is imported first, then ``READY`` is written to stderr and the process waits for a
line on stdin before invoking, so a test can release several at the same moment. The
handler's return value (or the error it raised) is written to RESULT_FILE as JSON; what the
handler prints (its logs) goes to stdout as usual.
"""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace


def main(argv: list[str]) -> int:
    module_name, event_file, result_file = argv
    module = importlib.import_module(f"lambdas.{module_name}")
    event = json.loads(Path(event_file).read_text())
    context = SimpleNamespace(function_name=module_name, aws_request_id=str(uuid.uuid4()))
    sys.stderr.write("READY\n")
    sys.stderr.flush()
    sys.stdin.readline()
    try:
        result = {"response": module.handler(event, context)}
    except Exception as error:
        result = {"error": f"{type(error).__name__}: {error}"}
    Path(result_file).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
