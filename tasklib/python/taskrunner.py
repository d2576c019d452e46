"""Task-side helper for the Terarium taskrunner.

Drop-in replacement for Terarium's ``TaskRunnerInterface``: same class name,
same constructor, same methods, signatures and defaults, with the bugs of the
original fixed (see the notes on each method).

The runner starts a task as::

    python3 task.py --id <uuid> --input_pipe <path> --output_pipe <path> --progress_pipe <path>

(the hyphen spellings ``--input-pipe`` etc. are accepted too). The three paths
are named pipes (FIFOs):

* input: the runner writes all input bytes and closes it; the task reads to EOF;
* progress: the task opens it, writes ONE JSON document, closes it, as many
  times as it likes; a JSON object with a ``done`` key ends progress;
* output: the task opens it once, writes its result, closes it.

Typical use::

    from taskrunner import TaskRunnerInterface

    taskrunner = TaskRunnerInterface(description="My task")
    taskrunner.on_cancellation(lambda: print("cancelled"))
    request = taskrunner.read_input_dict_with_timeout()
    taskrunner.write_progress_dict_with_timeout({"progress": 0.5})
    taskrunner.write_output_dict_with_timeout({"result": 42})
    taskrunner.shutdown()

Standard library only; Python 3.8+.
"""

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any, Callable, List, Optional, Sequence, TypeVar

__all__ = ["TaskRunnerInterface", "SelfDestructThread", "READ_CHUNK_SIZE"]
__version__ = "0.1.0"

READ_CHUNK_SIZE = 1024 * 1024
"""Size of the chunks in which the input pipe is read."""

_T = TypeVar("_T")


class SelfDestructThread:
    """Kill the current process with SIGKILL after a timeout unless stopped.

    Unlike the original, the thread is a daemon thread: a task that finished
    its work (and forgot to call :meth:`TaskRunnerInterface.shutdown`) still
    exits instead of lingering until the timeout.
    """

    def __init__(self, self_destruct_timeout_seconds: float):
        """Prepare (but do not start) the timer.

        :param self_destruct_timeout_seconds: seconds after :meth:`start` at
            which the process kills itself.
        """
        self.self_destruct_timeout_seconds = self_destruct_timeout_seconds
        self.stop_destruct_event = threading.Event()
        self.thread = threading.Thread(
            target=self._kill_after_timeout, name="taskrunner-self-destruct", daemon=True
        )

    def start(self) -> None:
        """Start the timer."""
        self.thread.start()

    def stop(self) -> None:
        """Stop the timer; the process will not be killed. Idempotent."""
        self.stop_destruct_event.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join()

    def _kill_after_timeout(self) -> None:
        self.stop_destruct_event.wait(self.self_destruct_timeout_seconds)
        if not self.stop_destruct_event.is_set():
            # if for whatever reason this process is still around, do our best to self destruct
            print(
                "Self-destruct timeout of {}s reached, killing process".format(
                    self.self_destruct_timeout_seconds
                ),
                file=sys.stderr,
                flush=True,
            )
            os.kill(os.getpid(), signal.SIGKILL)


def _run_with_timeout(
    func: Callable[[threading.Event], _T], timeout_seconds: Optional[float], what: str
) -> _T:
    """Run ``func`` in a daemon thread and wait at most ``timeout_seconds``.

    ``func`` receives an event that is set when the caller gave up waiting, so
    that a late completion (for example a FIFO ``open`` that finally finds its
    peer) can avoid side effects. A thread still blocked after the timeout is a
    daemon thread and never keeps the process alive.

    :raises TimeoutError: when the timeout expires.
    """
    abandoned = threading.Event()
    result: List[Any] = []
    error: List[BaseException] = []

    def target() -> None:
        try:
            result.append(func(abandoned))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            error.append(e)

    thread = threading.Thread(target=target, name="taskrunner-io", daemon=True)
    thread.start()
    thread.join(timeout_seconds)
    if thread.is_alive():
        abandoned.set()
        raise TimeoutError("{} timed out after {}s".format(what, timeout_seconds))
    if error:
        raise error[0]
    return result[0]


class TaskRunnerInterface:
    """The task's side of the taskrunner protocol.

    Parses the command line on construction and starts the self-destruct
    timer (``--self_destruct_timeout_seconds``, default one day).

    Attributes: ``id``, ``input`` (inline input given with ``--input``, or
    None), ``input_pipe``, ``output_pipe``, ``progress_pipe`` (paths or None)
    and ``has_written_output``.
    """

    def __init__(self, description: str, args: Optional[Sequence[str]] = None):
        """Parse the arguments and start the self-destruct timer.

        :param description: description shown by ``--help``.
        :param args: arguments to parse instead of ``sys.argv[1:]`` (for tests).
        :raises ValueError: if neither ``--input`` nor ``--input_pipe`` is given.
        """
        parser = argparse.ArgumentParser(description=description)
        parser.add_argument("--id", type=str, required=True, help="The id of the request")
        parser.add_argument(
            "--input", type=str, required=False, help="The input, given inline instead of a pipe"
        )
        parser.add_argument(
            "--input_pipe",
            "--input-pipe",
            dest="input_pipe",
            type=str,
            required=False,
            help="The name of the input pipe",
        )
        parser.add_argument(
            "--output_pipe",
            "--output-pipe",
            dest="output_pipe",
            type=str,
            required=False,
            help="The name of the output pipe",
        )
        parser.add_argument(
            "--progress_pipe",
            "--progress-pipe",
            dest="progress_pipe",
            type=str,
            required=False,
            help="The name of the progress pipe",
        )
        parser.add_argument(
            "--self_destruct_timeout_seconds",
            "--self-destruct-timeout-seconds",
            dest="self_destruct_timeout_seconds",
            type=int,
            default=60 * 60 * 24,
            required=False,
            help="Process self destruct timeout in seconds",
        )
        parsed = parser.parse_args(args)
        self.id: str = parsed.id
        self.input: Optional[str] = parsed.input
        self.input_pipe: Optional[str] = parsed.input_pipe
        self.output_pipe: Optional[str] = parsed.output_pipe
        self.progress_pipe: Optional[str] = parsed.progress_pipe
        self.has_written_output = False

        if self.input is None and self.input_pipe is None:
            raise ValueError("Either `input` or `input_pipe` must be specified")

        # Start the self destruct timer
        self.self_destructor = SelfDestructThread(parsed.self_destruct_timeout_seconds)
        self.self_destructor.start()

    def log(self, msg: str) -> None:
        """Print ``msg`` to stdout and flush (the runner captures stdout)."""
        print(msg, flush=True)

    def shutdown(self) -> None:
        """Stop the self-destruct timer. Call it when the task is done."""
        self.self_destructor.stop()

    # ------------------------------------------------------------------ input

    def read_input_bytes_with_timeout(self, timeout_seconds: int = 30) -> bytes:
        """Read the whole input: from ``--input`` (UTF-8 encoded) or the input pipe to EOF.

        :raises TimeoutError: if the input is not complete within ``timeout_seconds``.
        """
        if self.input is not None:
            self.log("Reading input from input argument")
            # the original returned the str here, not bytes
            return self.input.encode("utf-8")

        input_pipe = self.input_pipe
        assert input_pipe is not None

        def read_input(_abandoned: threading.Event) -> bytes:
            self.log("Reading input from input pipe")
            chunks = []
            with open(input_pipe, "rb") as f:
                while True:
                    chunk = f.read(READ_CHUNK_SIZE)
                    if chunk == b"":
                        break
                    chunks.append(chunk)
            return b"".join(chunks)

        return _run_with_timeout(read_input, timeout_seconds, "Reading from input pipe")

    def read_input_str_with_timeout(self, timeout_seconds: int = 30) -> str:
        """Read the whole input and decode it as UTF-8.

        :raises TimeoutError: if the input is not complete within ``timeout_seconds``.
        """
        # the original called itself here, recursing forever
        return self.read_input_bytes_with_timeout(timeout_seconds).decode("utf-8")

    def read_input_dict_with_timeout(self, timeout_seconds: int = 30) -> dict:
        """Read the whole input and parse it as JSON.

        :raises TimeoutError: if the input is not complete within ``timeout_seconds``.
        :raises json.JSONDecodeError: if the input is not JSON.
        """
        return json.loads(self.read_input_str_with_timeout(timeout_seconds))

    # --------------------------------------------------------------- progress

    def _write_pipe(self, path: str, data: bytes, timeout_seconds: Optional[float], what: str):
        def write(abandoned: threading.Event) -> None:
            with open(path, "wb") as f_out:
                # the reader may have turned up after we gave up: write nothing then
                if not abandoned.is_set():
                    f_out.write(data)

        try:
            _run_with_timeout(write, timeout_seconds, what)
        except TimeoutError:
            print("{} {} timed out".format(what, path), flush=True)
            raise

    def write_progress_str_with_timeout(self, progress: str, timeout_seconds: int = 30) -> None:
        """Send one progress message (normally a JSON document).

        Opens the progress pipe, writes ``progress``, closes it. Without a
        progress pipe the message is printed to stdout.

        :raises TimeoutError: if the runner does not take it within ``timeout_seconds``.
        """
        # if no progress pipe is specified, just print the progress to stdout
        if self.progress_pipe is None:
            self.log("Writing progress to stdout")
            print(progress, flush=True)
            return
        self._write_pipe(
            self.progress_pipe, progress.encode("utf-8"), timeout_seconds, "Writing to progress pipe"
        )

    def write_progress_dict_with_timeout(self, progress: dict, timeout_seconds: int = 30) -> None:
        """Send one progress message, serialised as JSON.

        Note that an object with a ``done`` key ends progress on the runner side.

        :raises TimeoutError: if the runner does not take it within ``timeout_seconds``.
        """
        return self.write_progress_str_with_timeout(json.dumps(progress), timeout_seconds)

    # ----------------------------------------------------------------- output

    def write_output_bytes_with_timeout(self, output: bytes, timeout_seconds: int = 30) -> None:
        """Write the task's result. Allowed once.

        First sends ``{"done": true}`` on the progress pipe (when there is one)
        so the runner stops reading progress, then opens the output pipe,
        writes ``output`` and closes it. Without an output pipe the output is
        printed to stdout (decoded as UTF-8).

        Each step gets its own ``timeout_seconds``.

        :raises ValueError: if output was already written.
        :raises TimeoutError: if the runner does not take it in time.
        """
        # output should only be written once
        if self.has_written_output:
            raise ValueError("Output has already been written")
        self.has_written_output = True

        # signal to the taskrunner that it should stop consuming progress
        # (the original skipped this when there was no output pipe)
        if self.progress_pipe is not None:
            self.write_progress_dict_with_timeout({"done": True}, timeout_seconds)

        # if no output pipe is specified, just print the output to stdout
        if self.output_pipe is None:
            self.log("Writing output to stdout")
            print(output.decode("utf-8", errors="replace"), flush=True)
            return

        self.log("Writing output to output pipe")
        self._write_pipe(self.output_pipe, output, timeout_seconds, "Writing to output pipe")

    def write_output_str_with_timeout(self, output: str, timeout_seconds: int = 30) -> None:
        """Write the task's result as UTF-8 text. Allowed once.

        See :meth:`write_output_bytes_with_timeout`.
        """
        return self.write_output_bytes_with_timeout(output.encode("utf-8"), timeout_seconds)

    def write_output_dict_with_timeout(self, output: Any, timeout_seconds: int = 30) -> None:
        """Write the task's result serialised as JSON. Allowed once.

        See :meth:`write_output_bytes_with_timeout`.
        """
        return self.write_output_str_with_timeout(json.dumps(output), timeout_seconds)

    # ----------------------------------------------------------- cancellation

    def on_cancellation(self, func: Callable) -> None:
        """On SIGTERM or SIGINT (cancel or timeout in the runner), call ``func()`` then exit(1).

        Must be called from the main thread (a Python rule for signal handlers).
        The runner sends SIGKILL after its grace period, so keep ``func`` short.
        """

        def signal_handler(sig, frame):
            try:
                func()
            finally:
                self.self_destructor.stop_destruct_event.set()
                sys.exit(1)

        signal.signal(signal.SIGINT, signal_handler)
        signal.signal(signal.SIGTERM, signal_handler)
