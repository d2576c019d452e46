"""The benchmark's Celery peer: the same echo task run by a Celery worker on the same RabbitMQ.

Celery 5 prefork worker, acks_late, prefetch 1, rpc result backend (results pushed to the
client through the broker, no polling). The task runs the benchmark's shell task with regular
files as its pipes and returns its output, as a Celery task would run a script.

Usage (from main.ts):

    python3 celery_peer.py <amqp-url> <echo.sh> <queue> <latency-tasks> <throughput-tasks> <concurrency>

Prints one JSON line:
{"latencySamples": [ms, ...], "throughputSeconds": s, "throughputTasks": n}
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from celery import Celery
from celery.result import ResultSet

app = Celery("bench_celery")
app.conf.update(
    broker_url=os.environ.get("BENCH_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//"),
    result_backend="rpc://",
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench_celery.echo")
def echo(script: str, data: str) -> str:
    work = tempfile.mkdtemp(prefix="celery-bench-")
    try:
        paths = {name: os.path.join(work, name) for name in ("input", "output", "progress")}
        with open(paths["input"], "w") as f:
            f.write(data)
        subprocess.run(
            ["sh", script, "--id", "x", "--input_pipe", paths["input"], "--output_pipe",
             paths["output"], "--progress_pipe", paths["progress"]],
            check=True, stdin=subprocess.DEVNULL,
        )
        with open(paths["output"]) as f:
            return f.read()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def wait_ready(queue: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5)
        if replies:
            return
    raise RuntimeError("Celery worker did not answer a ping within 60 s")


def main(argv: list) -> int:
    url, script, queue, latency_tasks, throughput_tasks, concurrency = argv
    app.conf.broker_url = url
    env = dict(os.environ, BENCH_CELERY_BROKER=url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_peer", "worker", "-P", "prefork",
         "-c", concurrency, "-Q", queue, "-l", "warning", "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        cwd=os.path.dirname(os.path.abspath(__file__)), env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_ready(queue)
        for _ in range(50):  # warm-up: every prefork child imports and connects
            echo.apply_async((script, "hello"), queue=queue).get(timeout=60)
        samples = []
        for _ in range(int(latency_tasks)):
            start = time.perf_counter()
            echo.apply_async((script, "hello"), queue=queue).get(timeout=60)
            samples.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        results = [echo.apply_async((script, "hello"), queue=queue)
                   for _ in range(int(throughput_tasks))]
        ResultSet(results).join_native(timeout=300)
        seconds = time.perf_counter() - start
        print(json.dumps({"latencySamples": samples, "throughputSeconds": seconds,
                          "throughputTasks": int(throughput_tasks)}))
        return 0
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        app.connection_for_write().default_channel.queue_delete(queue)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
