import { whenAborted } from "../util/abort.ts";
import type { ProcessGroup, StopReason } from "./process_group.ts";
import type { TaskTimer } from "./timer.ts";

/** How the wait for a task ended: the leader's exit status, and why it was stopped, if it was. */
export interface TaskExit {
  status: Deno.CommandStatus;
  stopReason?: StopReason;
}

/**
 * Waits until the task exits on its own, or until a time limit or `signal` stops it: then its
 * group is terminated (SIGTERM, SIGKILL after `killGraceMs`). Either way the timer is stopped
 * and whatever the task left behind is killed.
 *
 * @param group the task's processes
 * @param options the task's timer, the caller's cancel signal, the grace before SIGKILL
 */
export async function awaitTaskExit(
  group: ProcessGroup,
  options: { timer: TaskTimer; signal?: AbortSignal | undefined; killGraceMs: number },
): Promise<TaskExit> {
  const { timer, signal } = options;
  const timeout = timer.signal;
  let first: Deno.CommandStatus | StopReason;
  {
    // Two waits raced, not one on AbortSignal.any (weak references and sets, for each task).
    using timedOut = whenAborted(timeout);
    using stopped = signal ? whenAborted(signal) : undefined;
    first = await Promise.race([
      group.status,
      timedOut.promise.then((): StopReason => "timeout"),
      ...(stopped ? [stopped.promise.then(() => stopReasonOf(signal?.reason))] : []),
    ]);
  }
  timer[Symbol.dispose](); // the task has ended: its reading and waiting are no activity
  if (typeof first === "string") {
    return { status: await group.terminate(options.killGraceMs), stopReason: first };
  }
  group.signal("SIGKILL"); // leftovers of a finished task
  return { status: first };
}

/** The outcome named by a cancel signal's reason: `shutdown`, or else `cancelled`. */
export function stopReasonOf(reason: unknown): "cancelled" | "shutdown" {
  return reason === "shutdown" ? "shutdown" : "cancelled";
}
