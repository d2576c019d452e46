/**
 * The benchmark's Celery peer (`celery_peer.py`): finds a Python with Celery, and runs the
 * same echo task through a Celery worker on the same RabbitMQ.
 *
 * @module
 */

/** What the Celery peer measured. */
export interface CeleryResult {
  /** Milliseconds per sequential task, publish to result. */
  latencySamples: number[];
  throughputSeconds: number;
  throughputTasks: number;
}

/** A Python interpreter that can import Celery, or undefined when none is installed. */
export async function findCelery(): Promise<string | undefined> {
  for (const python of ["python3", "/usr/bin/python3"]) {
    try {
      const { success } = await new Deno.Command(python, {
        args: ["-c", "import celery"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (success) return python;
    } catch {
      // not there
    }
  }
  return undefined;
}

/**
 * Starts a Celery worker (prefork, acks_late, rpc backend) on a private queue, runs the
 * sequential and concurrent echo tasks through it, and stops it.
 */
export async function runCelery(
  python: string,
  options: {
    amqpUrl: string;
    script: string;
    latencyTasks: number;
    throughputTasks: number;
    concurrency: number;
    /** Where the task's files are made: the same file system as the runner's FIFOs. */
    tmpDir: string;
  },
): Promise<CeleryResult> {
  const url = options.amqpUrl.endsWith("/") ? `${options.amqpUrl}/` : `${options.amqpUrl}//`;
  const { success, stdout, stderr } = await new Deno.Command(python, {
    args: [
      new URL("./celery_peer.py", import.meta.url).pathname,
      url,
      options.script,
      `bench-celery-${crypto.randomUUID().slice(0, 8)}`,
      String(options.latencyTasks),
      String(options.throughputTasks),
      String(options.concurrency),
    ],
    env: { TMPDIR: options.tmpDir },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!success) {
    throw new Error(`Celery peer failed: ${decoder.decode(stderr).trim().split("\n").at(-1)}`);
  }
  return JSON.parse(decoder.decode(stdout).trim().split("\n").at(-1)!);
}
