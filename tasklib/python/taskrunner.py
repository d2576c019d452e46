"""Task-side helper for the Terarium taskrunner.

Drop-in replacement for Terarium's ``TaskRunnerInterface``
(``packages/taskrunner/taskrunner.py`` in the terarium repository, as of its
last change, "Fix accidental recursion", #4843): same module and class name,
same constructor and command line, same methods with the same arguments and
defaults, the same return values, exceptions, exception messages and stdout
lines. Where this module differs it says so in the method's notes; each
difference only turns a hang or a crash of the original into working code,
or adds something the original lacks.

The runner starts a task as::

    python3 task.py --id <uuid> --input_pipe <path> --output_pipe <path> --progress_pipe <path>

(the hyphen spellings ``--input-pipe`` etc. are accepted too). The three paths
are named pipes (FIFOs):

* input: the runner writes all input bytes and closes it; the task reads to EOF;
* progress: the task opens it, writes ONE JSON document, closes it, as many
  times as it likes; a JSON object with a ``done`` key ends progress;
* output: the task opens it once, writes its result, closes it. A task that
  exits without opening it has failed, whatever its exit code: this module
  never writes an output on the task's behalf.

By hand, ``--input '<text>'`` replaces the input pipe, and without an output
or progress pipe the output and the progress go to stdout::

    python3 task.py --id 1 --input '{"text": "a b c"}'

Typical use::

    from taskrunner import TaskRunnerInterface

    taskrunner = TaskRunnerInterface(description="My task")
    taskrunner.on_cancellation(lambda: print("cancelled"))
    request = taskrunner.read_input_dict_with_timeout()
    taskrunner.write_progress_dict_with_timeout({"progress": 0.5}, 30)
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
from typing import Any, Callable, List, Optional, Sequence, TypeVar, Union

__all__ = ["TaskRunnerInterface", "SelfDestructThread", "READ_CHUNK_SIZE"]
__version__ = "0.2.0"

READ_CHUNK_SIZE = 1024 * 1024
"""Size of the chunks in which the input pipe is read."""

# Accepted for runners started with hyphenated pipe arguments. They are rewritten to the
# original's spelling before parsing, so that the parser stays the original's: as aliases they
# would make abbreviations such as `--output` ambiguous, which the original accepts.
_HYPHEN_SPELLINGS = {
    "--input-pipe": "--input_pipe",
    "--output-pipe": "--output_pipe",
    "--progress-pipe": "--progress_pipe",
    "--self-destruct-timeout-seconds": "--self_destruct_timeout_seconds",
}

_T = TypeVar("_T")


class SelfDestructThread:
    """Kill the current process with SIGKILL after a timeout unless stopped.

    Differs from the original: the thread is a daemon thread. With the
    original, a task that returns without calling
    :meth:`TaskRunnerInterface.shutdown` (Funman's error path does) stays
    alive until the self-destruct timeout, a day by default, or until the
    runner kills it; here the process exits as soon as its main thread ends.
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
        """Stop the timer and wait for its thread; the process will not be killed. Idempotent."""
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
    func: Callable[[threading.Event], _T], timeout_seconds: Optional[float], message: str
) -> _T:
    """Run ``func`` in a daemon thread and wait at most ``timeout_seconds`` (None: no limit).

    ``func`` receives an event that is set when the caller gave up waiting, so
    that a late completion (for example a FIFO ``open`` that finally finds its
    peer) can avoid side effects. A thread still blocked after the timeout is a
    daemon thread and never keeps the process alive. (The original waits in a
    ``ThreadPoolExecutor`` whose ``with`` block joins the blocked thread before
    the ``TimeoutError`` gets out: its timeouts return only once the blocked
    call completes, if ever.)

    :raises TimeoutError: with ``message``, when the timeout expires.
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
        raise TimeoutError(message)
    if error:
        raise error[0]
    return result[0]


def _write_fifo(path: str, data: bytes, timeout_seconds: Optional[float], message: str) -> None:
    """Open ``path`` for writing, write ``data``, close it; all within ``timeout_seconds``.

    :raises TimeoutError: with ``message``, when the timeout expires.
    """

    def write(abandoned: threading.Event) -> None:
        with open(path, "wb") as f_out:
            # the reader may have turned up after we gave up: write nothing then
            if not abandoned.is_set():
                f_out.write(data)

    _run_with_timeout(write, timeout_seconds, message)


def _parse_args(description: str, args: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse the command line with the original's parser (after rewriting hyphen spellings).

    Exits with status 2 and a usage message on bad arguments, as argparse does.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--id", type=str, required=True, help="The id of the request")
    parser.add_argument(
        "--input", type=str, required=False, help="The input, given inline instead of a pipe"
    )
    parser.add_argument(
        "--input_pipe", type=str, required=False, help="The name of the input pipe"
    )
    parser.add_argument(
        "--output_pipe", type=str, required=False, help="The name of the output pipe"
    )
    parser.add_argument(
        "--progress_pipe", type=str, required=False, help="The name of the progress pipe"
    )
    parser.add_argument(
        "--self_destruct_timeout_seconds",
        type=int,
        default=60 * 60 * 24,
        required=False,
        help="Process self destruct timeout in seconds",
    )
    given = sys.argv[1:] if args is None else list(args)
    return parser.parse_args([_original_spelling(arg) for arg in given])


def _original_spelling(arg: str) -> str:
    """``--input-pipe`` → ``--input_pipe`` (also in the ``--input-pipe=<path>`` form)."""
    name, sep, value = arg.partition("=")
    original = _HYPHEN_SPELLINGS.get(name)
    return original + sep + value if original is not None else arg


class TaskRunnerInterface:
    """The task's side of the taskrunner protocol.

    Parses the command line on construction and starts the self-destruct
    timer (``--self_destruct_timeout_seconds``, default one day).

    Attributes: ``id``, ``input`` (inline input given with ``--input``, or
    None), ``input_pipe``, ``output_pipe``, ``progress_pipe`` (paths or None),
    ``has_written_output`` and ``self_destructor``.
    """

    def __init__(self, description: str, args: Optional[Sequence[str]] = None):
        """Parse the arguments and start the self-destruct timer.

        :param description: description shown by ``--help``.
        :param args: arguments to parse instead of ``sys.argv[1:]`` (not in the
            original; for tests).
        :raises SystemExit: (status 2, from argparse) without ``--id`` or on an
            unknown argument.
        :raises ValueError: if neither ``--input`` nor ``--input_pipe`` is given.
        """
        parsed = _parse_args(description, args)
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

    def read_input_bytes_with_timeout(self, timeout_seconds: int = 30) -> Union[bytes, str]:
        """Read the whole input from the input pipe, to EOF.

        With ``--input`` the argument itself is returned, a ``str`` and not
        ``bytes``, as the original does.

        :raises TimeoutError: ("Reading from input pipe timed out") if the input
            is not complete within ``timeout_seconds``.
        """
        if self.input is not None:
            self.log("Reading input from input argument")
            return self.input

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

        return _run_with_timeout(read_input, timeout_seconds, "Reading from input pipe timed out")

    def read_input_str_with_timeout(self, timeout_seconds: int = 30) -> str:
        """Read the whole input and decode it as UTF-8.

        Differs from the original with ``--input``: the original fails there
        (``AttributeError``, it decodes the ``str``); this returns the argument.

        :raises TimeoutError: if the input is not complete within ``timeout_seconds``.
        :raises UnicodeDecodeError: if the input is not UTF-8.
        """
        data = self.read_input_bytes_with_timeout(timeout_seconds)
        return data if isinstance(data, str) else data.decode("utf-8")

    def read_input_dict_with_timeout(self, timeout_seconds: int = 30) -> dict:
        """Read the whole input and parse it as JSON (any JSON value, despite the name).

        Differs from the original with ``--input``, as
        :meth:`read_input_str_with_timeout` does.

        :raises TimeoutError: if the input is not complete within ``timeout_seconds``.
        :raises json.JSONDecodeError: if the input is not JSON.
        """
        return json.loads(self.read_input_str_with_timeout(timeout_seconds))

    # --------------------------------------------------------------- progress

    def write_progress_str_with_timeout(self, progress: str, timeout_seconds: int = 30) -> None:
        """Send one progress message (normally a JSON document).

        Opens the progress pipe, writes ``progress``, closes it. Without a
        progress pipe the message is printed to stdout.

        :raises TimeoutError: ("Writing to progress pipe timed out", after a
            line "Writing to progress pipe <path> timed out" on stdout) if the
            runner does not take it within ``timeout_seconds``.
        """
        # if no progress pipe is specified, just print the progress to stdout
        if self.progress_pipe is None:
            self.log("Writing progress to stdout")
            print(progress, flush=True)
            return
        try:
            _write_fifo(
                self.progress_pipe,
                progress.encode("utf-8"),
                timeout_seconds,
                "Writing to progress pipe timed out",
            )
        except TimeoutError:
            print("Writing to progress pipe {} timed out".format(self.progress_pipe), flush=True)
            raise

    def write_progress_dict_with_timeout(self, progress: dict, timeout_seconds: int = 30) -> None:
        """Send one progress message, serialised as JSON.

        An object with a ``done`` key ends progress on the runner side. The
        original has no default for ``timeout_seconds``; the 30 here is the
        default of every other method.

        :raises TimeoutError: if the runner does not take it within ``timeout_seconds``.
        """
        return self.write_progress_str_with_timeout(json.dumps(progress), timeout_seconds)

    # ----------------------------------------------------------------- output

    def write_output_bytes_with_timeout(self, output: bytes, timeout_seconds: int = 30) -> None:
        """Write the task's result. Allowed once. (Not in the original, which writes text only.)

        Without an output pipe the output is printed to stdout (decoded as
        UTF-8) and nothing is sent on the progress pipe. Otherwise it first
        sends ``{"done": true}`` as progress (printed to stdout when there is
        no progress pipe), so that the runner stops reading progress, then
        opens the output pipe, writes ``output`` and closes it. Each of the
        two writes gets its own ``timeout_seconds``.

        :raises ValueError: ("Output has already been written") on a second call.
        :raises TimeoutError: ("Writing to output pipe timed out", or the
            progress pipe's) if the runner does not take it in time.
        """
        # output should only be written once
        if self.has_written_output:
            raise ValueError("Output has already been written")
        self.has_written_output = True

        # if no output pipe is specified, just print the output to stdout
        if self.output_pipe is None:
            self.log("Writing output to stdout")
            print(output.decode("utf-8", errors="replace"), flush=True)
            return

        # signal to the taskrunner that it should stop consuming progress
        self.write_progress_dict_with_timeout({"done": True}, timeout_seconds)

        self.log("Writing output to output pipe")
        _write_fifo(self.output_pipe, output, timeout_seconds, "Writing to output pipe timed out")

    def write_output_str_with_timeout(self, output: str, timeout_seconds: int = 30) -> None:
        """Write the task's result as UTF-8 text. Allowed once.

        See :meth:`write_output_bytes_with_timeout`.
        """
        return self.write_output_bytes_with_timeout(output.encode("utf-8"), timeout_seconds)

    def write_output_dict_with_timeout(self, output: Any, timeout_seconds: int = 30) -> None:
        """Write the task's result serialised as JSON (any JSON-serialisable value). Allowed once.

        See :meth:`write_output_bytes_with_timeout`.
        """
        return self.write_output_str_with_timeout(json.dumps(output), timeout_seconds)

    # ----------------------------------------------------------- cancellation

    def on_cancellation(self, func: Callable) -> None:
        """On SIGTERM or SIGINT (cancel or timeout in the runner), call ``func()`` then exit(1).

        Must be called from the main thread (a Python rule for signal handlers).
        The runner sends SIGKILL after its grace period, so keep ``func`` short.
        Differs from the original: the self-destruct timer is stopped, so the
        process really exits with 1 (unless :meth:`shutdown` was called before,
        the original then waits for its timer thread until the runner's
        SIGKILL), and it exits with 1 even when ``func`` raises.
        """

        def signal_handler(sig, frame):
            try:
                func()
            finally:
                self.self_destructor.stop_destruct_event.set()
                sys.exit(1)

        signal.signal(signal.SIGINT, signal_handler)
        signal.signal(signal.SIGTERM, signal_handler)
