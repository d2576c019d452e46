/**
 * When the runner gives memory back: around large payloads (a request's body, a task's output)
 * and once it has gone idle after work. Kept apart from the runner's work, as BullMQ keeps its
 * lock renewal behind a narrow class of its own.
 *
 * @module
 */

import type { Logger } from "../observability/log.ts";
import { releaseMemory } from "../os/release_memory.ts";
import { errorMessage } from "../util/async.ts";
import { IdleRelease } from "./idle_release.ts";

// From this size, a request's body or a task's output has the runner release memory (a full
// collection, and the allocator trimmed where small buffers were let go) wherever buffers of
// the whole payload have just become garbage, before the next copy: V8 and glibc would leave
// them resident. Only the body's release is off the path to the response (once the task runs).
const COLLECT_FROM_BYTES = 8 * 1024 * 1024;

// A body up to this size is kept while its task runs, so that a shutdown can put the request
// back as a copy that keeps its count of lost runs; a larger one is let go (memory) and its
// requeue counts as a lost run.
const KEPT_BODY_BYTES = 2 * 1024 * 1024;

// Idle this long after work, the runner gives memory back (a full collection and a trim).
const IDLE_RELEASE_MS = 1_000;

/** The runner's memory policy: which payloads are large, and when memory is released. */
export class MemoryPolicy implements Disposable {
  readonly #log: Logger;
  readonly #idleRelease = new IdleRelease(() => this.release({ trim: true }), IDLE_RELEASE_MS);

  /** @param log where a failed release is noted (at debug: memory is a matter of degree) */
  constructor(log: Logger) {
    this.#log = log;
  }

  /** Whether a payload of `bytes` is large enough to release memory around its copies. */
  isLarge(bytes: number): boolean {
    return bytes >= COLLECT_FROM_BYTES;
  }

  /** Whether a request's body of `bytes` is kept while its task runs (to requeue it as a copy). */
  keepsBody(bytes: number): boolean {
    return bytes <= KEPT_BODY_BYTES;
  }

  /** A task started: no idle release until the runner is idle again. */
  busy(): void {
    this.#idleRelease.busy();
  }

  /** No task runs any more: memory is released after a while, unless a task starts. */
  idle(): void {
    this.#idleRelease.idle();
  }

  /**
   * Releases memory after a turn (so that no frame still holds what was just let go); never
   * rejects: memory is a matter of degree, not of the request's outcome.
   *
   * @param options `trim`: also trim glibc's heaps
   */
  async release(options: { trim?: boolean } = {}): Promise<void> {
    await Promise.resolve();
    await releaseMemory(options).catch((error) => {
      this.#log.debug("Cannot release memory", { error: errorMessage(error) });
    });
  }

  [Symbol.dispose](): void {
    this.#idleRelease[Symbol.dispose]();
  }
}
