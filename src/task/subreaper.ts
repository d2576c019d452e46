/**
 * Keeps a task's daemons from escaping it. A process that a task starts and that leaves the
 * task's process group (`setsid()`, `setpgid()`) survives the group kill; once its parent
 * exits it is re-parented, and with the runner a child subreaper (`PR_SET_CHILD_SUBREAPER`)
 * it comes back to the runner instead of init. When a task ends, the runner kills and reaps
 * the orphans that are the task's: those in the task's session, and those whose environment
 * carries the task's id ({@linkcode TASK_ID_VARIABLE}). An orphan that kept neither (it left
 * the session and cleared its environment) cannot be told apart: it is stopped at the end of
 * the next task, whichever that is. Orphans of a task still running are left alone.
 *
 * Deno reaps its own children (`Deno.Command`) by their pid; reaping one here would lose its
 * status. They are never touched: they share the runner's session, or are the leaders of task
 * groups started through `Deno.Command`, which {@linkcode trackLeader} records.
 *
 * @module
 */
import { fdPoller } from "../os/fd_poller.ts";
import { type Libc, libc, pidfdOpen, POLLIN, WNOHANG } from "../os/libc.ts";
import { environValue, mainThreadChildren, readStat } from "../os/proc_files.ts";

/** The variable every task gets, holding its id, by which its daemons are recognised. */
export const TASK_ID_VARIABLE = "TASKRUNNER_TASK_ID";

const PR_SET_CHILD_SUBREAPER = 36;
const SIGKILL = 9;
// Killing an orphan re-parents its own children to us: sweep again, a bounded number of times.
const MAX_ROUNDS = 8;

/** Live task leaders (pid, which is also their session and group) and their task ids. */
const leaders = new Map<number, string>();
/**
 * Tasks being spawned: their processes may already run (and fork) before the spawn returns
 * their pid, and one may not carry its environment yet (between fork and exec).
 */
const starting = new Map<string, number>();
let subreaper: boolean | undefined;
let ownSession: number | undefined;

/**
 * Makes this process a child subreaper, once.
 *
 * @returns whether it is one
 */
export function becomeSubreaper(): boolean {
  if (subreaper === undefined) {
    const lib = libc();
    subreaper = lib !== null && lib.prctl(PR_SET_CHILD_SUBREAPER, 1n, 0n, 0n, 0n) === 0;
  }
  return subreaper;
}

/** Marks a task as being spawned, until {@linkcode spawnEnded}: its processes are left alone. */
export function spawnStarted(taskId: string): void {
  starting.set(taskId, (starting.get(taskId) ?? 0) + 1);
}

/** The spawn of a task has returned (its leader is tracked, or it failed). */
export function spawnEnded(taskId: string): void {
  const count = (starting.get(taskId) ?? 1) - 1;
  if (count > 0) starting.set(taskId, count);
  else starting.delete(taskId);
}

/** Records a task's leader while it runs: never swept, and its session is the task's. */
export function trackLeader(pid: number, taskId: string): void {
  leaders.set(pid, taskId);
}

/** Forgets a leader once it has been reaped. */
export function untrackLeader(pid: number): void {
  leaders.delete(pid);
}

/**
 * Kills and reaps the orphans of the task `taskId` that came back to this process, the
 * unattributable ones, and any orphan's zombie; call it once the task's leader is reaped.
 *
 * @returns how many orphans were killed
 */
export async function sweepOrphans(taskId: string): Promise<number> {
  const lib = libc();
  if (!lib || !subreaper) return 0;
  // The runner never changes its session: asked once.
  ownSession ??= lib.getsid(0);
  const running = new Set([...leaders.values(), ...starting.keys()]);
  let killed = 0;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const doomed: number[] = [];
    for (const pid of mainThreadChildren(lib)) {
      if (leaders.has(pid)) continue;
      const stat = readStat(lib, pid);
      if (!stat || stat.session === ownSession) continue; // gone, or one of Deno's own
      const owner = leaders.get(stat.session) ?? environValue(lib, pid, TASK_ID_VARIABLE);
      if (owner !== undefined && owner !== taskId && running.has(owner)) continue;
      // Perhaps a task being spawned (between its fork and its exec, or its leader exited
      // before its spawn returned; a zombie shows no environment): next time, then.
      if (owner === undefined && starting.size > 0) continue;
      if (stat.state === "Z") {
        lib.waitpid(pid, new Int32Array(1), WNOHANG);
        continue;
      }
      doomed.push(pid);
    }
    if (doomed.length === 0) break;
    await Promise.all(doomed.map((pid) => killAndReap(lib, pid)));
    killed += doomed.length;
  }
  return killed;
}

async function killAndReap(lib: Libc, pid: number): Promise<void> {
  // Our child, not yet reaped: the pid cannot have been reused.
  const pidfd = pidfdOpen(lib, pid);
  try {
    lib.kill(pid, SIGKILL);
    const status = new Int32Array(1);
    while (lib.waitpid(pid, status, WNOHANG) === 0) {
      if (pidfd < 0) return; // no pidfd: the next sweep reaps the zombie
      await fdPoller().wait(pidfd, POLLIN);
    }
  } finally {
    if (pidfd >= 0) {
      fdPoller().forget(pidfd);
      lib.close(pidfd);
    }
  }
}
