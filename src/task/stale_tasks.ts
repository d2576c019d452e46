import { basename, join } from "node:path";
import { killStaleTaskProcesses } from "./stale_processes.ts";

/** A task's owner record: which runner made it, and (once started) the task's process group. */
export interface TaskOwner {
  runnerPid: number;
  /** When that runner started (ms since the epoch): tells it from a later one with its pid. */
  runnerStartedAt: number;
  pgid?: number;
}

// The owner record: a symbolic link beside the directory whose target is the task's process
// group (the directory's name tells the runner). One system call makes it whole or not at all,
// where a file took four (create, write, close, rename) and a temporary name.
const OWNER_LINK_SUFFIX = ".owner";
// The owner record of earlier versions: a JSON file (kept for reaping after an upgrade).
const OWNER_RECORD_SUFFIX = ".owner.json";
// The owner record of a task directory before its format carried the runner (kept for reaping).
const LEGACY_OWNER_FILE = "owner.json";
const RUNNER_STARTED_AT = Math.floor(performance.timeOrigin);
// `task-<id>-r<pid>.<start in base 36>-<random>`: whose a directory is, even with no record.
const TAGGED_NAME = /-r(\d+)\.([0-9a-z]+)-[0-9a-z]+$/;

/**
 * This runner's tag in the names of its task directories: its pid and start time, so that a
 * directory left without an owner record can still be told to be a dead runner's.
 */
export function runnerTag(): string {
  return `r${Deno.pid}.${RUNNER_STARTED_AT.toString(36)}`;
}

/** Where the owner record of a task directory is kept: beside it, out of the task's reach. */
export function ownerRecordPath(dir: string): string {
  return `${dir}${OWNER_LINK_SUFFIX}`;
}

/**
 * Records that the task of a directory (whose name tells this runner) runs in process group
 * `pgid`, so that a runner started after this one was killed can stop it. Atomic: a runner
 * killed at any point leaves the record whole or absent (the name still tells whose the
 * directory is). Written in place: one quick system call.
 *
 * @param dir the task directory
 * @param pgid the task's process group
 */
export function writeTaskOwner(dir: string, pgid: number): void {
  Deno.symlinkSync(String(pgid), ownerRecordPath(dir));
}

/** Removes a task directory's owner record: the task has ended. */
export function removeTaskOwner(dir: string): void {
  try {
    Deno.removeSync(ownerRecordPath(dir));
  } catch {
    // never written, or already gone
  }
}

/**
 * Cleans up after runners that died without doing it themselves (SIGKILL, OOM kill): kills
 * their tasks' processes (whatever their work dir: see `stale_processes.ts`) and the process
 * groups their records name, and removes their FIFO directories and owner records,
 * including those of a runner killed before it could write a record, or while writing one.
 * Directories of live runners sharing the work dir are left alone, and so is anything whose
 * runner cannot be told.
 *
 * @param workDir the runner's work directory
 * @returns how many stale tasks were removed
 */
export async function reapStaleTasks(workDir: string): Promise<number> {
  // First the processes, found by the task directory in their environment: a runner killed
  // between a spawn and its record, a daemon that left the task's group, a directory already
  // removed, each leaves processes that no record names.
  const dead = new Map<string, boolean>();
  killStaleTaskProcesses((name) => {
    let stale = dead.get(name);
    if (stale === undefined) {
      const owner = ownerFromName(name);
      stale = owner !== undefined && !isRunnerAlive(owner);
      dead.set(name, stale);
    }
    return stale;
  });
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(workDir));
  } catch {
    return 0; // no work dir yet
  }
  // A task is its directory, its record and any temporary record, all named after the dir.
  const tasks = new Map<string, string[]>();
  for (const entry of entries) {
    if (!entry.name.startsWith("task-")) continue;
    const base = entry.name.split(OWNER_LINK_SUFFIX)[0]!;
    tasks.set(base, [...tasks.get(base) ?? [], entry.name]);
  }
  let reaped = 0;
  for (const [base, names] of tasks) {
    const dir = join(workDir, base);
    const owner = await linkedOwner(dir) ??
      await readOwner(`${dir}${OWNER_RECORD_SUFFIX}`) ??
      ownerFromName(base) ??
      await readOwner(join(dir, LEGACY_OWNER_FILE), { legacy: true });
    if (!owner || isRunnerAlive(owner)) continue;
    if (owner.pgid !== undefined && owner.pgid > 1) {
      try {
        Deno.kill(-owner.pgid, "SIGKILL");
      } catch {
        // the group is already gone
      }
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    for (const name of names) await Deno.remove(join(workDir, name)).catch(() => {});
    reaped++;
  }
  return reaped;
}

// The runner from the directory's name, the group from the link's target.
async function linkedOwner(dir: string): Promise<TaskOwner | undefined> {
  const owner = ownerFromName(dir);
  if (!owner) return undefined;
  try {
    const pgid = Number(await Deno.readLink(ownerRecordPath(dir)));
    return Number.isInteger(pgid) ? { ...owner, pgid } : owner;
  } catch {
    return undefined; // no link (not started yet, or an earlier version's record)
  }
}

async function readOwner(
  path: string,
  options: { legacy?: boolean } = {},
): Promise<TaskOwner | undefined> {
  try {
    const value = JSON.parse(await Deno.readTextFile(path));
    if (!Number.isInteger(value?.runnerPid) || value.runnerPid <= 0) return undefined;
    // A legacy record has no start time: its pid alone decides.
    const startedAt = options.legacy ? undefined : value.runnerStartedAt;
    if (!options.legacy && !Number.isFinite(startedAt)) return undefined;
    return {
      runnerPid: value.runnerPid,
      runnerStartedAt: startedAt ?? Number.NaN,
      ...(Number.isInteger(value.pgid) ? { pgid: value.pgid } : {}),
    };
  } catch {
    return undefined; // missing, empty or partial: the directory's name may still tell
  }
}

function ownerFromName(name: string): TaskOwner | undefined {
  const match = TAGGED_NAME.exec(basename(name));
  if (!match) return undefined;
  return { runnerPid: Number(match[1]), runnerStartedAt: parseInt(match[2]!, 36) };
}

function isRunnerAlive(owner: TaskOwner): boolean {
  if (owner.runnerPid === Deno.pid) {
    // This pid, but another start time: a runner before this one (a restarted container).
    return Number.isNaN(owner.runnerStartedAt) || owner.runnerStartedAt === RUNNER_STARTED_AT;
  }
  return isAlive(owner.runnerPid);
}

// Deno lets only a program with every permission read `/proc`, so ask the kernel instead:
// SIGCONT changes nothing for a running process; only ESRCH (NotFound) says there is none. A
// process of another user (EPERM: a runner of another uid whose tasks run as ours) is alive, and
// so are a zombie and a reused pid, which errs on the side of leaving things be.
function isAlive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch (error) {
    return !(error instanceof Deno.errors.NotFound);
  }
}
