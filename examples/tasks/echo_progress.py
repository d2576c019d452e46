#!/usr/bin/env python3
"""Example task: echo the input back as output after a few progress messages.

Input: any bytes; if it is a JSON object with an integer ``progress_steps``
field, that many progress messages are sent (default 3). Optional
``step_seconds`` (float, default 0) sleeps between steps, to try cancellation.

Run by the taskrunner as
``python3 echo_progress.py --id <uuid> --input_pipe <p> --output_pipe <p> --progress_pipe <p>``,
or by hand as ``python3 echo_progress.py --id x --input '{"progress_steps": 2}'``.
"""

import json
import os
import sys
import time

try:
    from taskrunner import TaskRunnerInterface
except ImportError:  # not installed: use the copy in this repository
    sys.path.insert(
        0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tasklib", "python")
    )
    from taskrunner import TaskRunnerInterface


def main() -> int:
    taskrunner = TaskRunnerInterface(description="Echo the input with progress messages")

    def on_cancel() -> None:
        taskrunner.log("echo_progress: cancelled, cleaning up")

    taskrunner.on_cancellation(on_cancel)

    data = taskrunner.read_input_bytes_with_timeout()
    if isinstance(data, str):  # given with --input: the interface returns the argument itself
        data = data.encode("utf-8")
    steps = 3
    step_seconds = 0.0
    try:
        request = json.loads(data.decode("utf-8"))
        if isinstance(request, dict):
            if isinstance(request.get("progress_steps"), int):
                steps = max(0, request["progress_steps"])
            if isinstance(request.get("step_seconds"), (int, float)):
                step_seconds = float(request["step_seconds"])
    except (ValueError, UnicodeDecodeError):
        pass  # not JSON: echo it anyway

    for i in range(1, steps + 1):
        if step_seconds > 0:
            time.sleep(step_seconds)
        taskrunner.write_progress_dict_with_timeout(
            {"progress": i, "total": steps, "message": "step {} of {}".format(i, steps)}
        )

    taskrunner.write_output_bytes_with_timeout(data)
    taskrunner.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
