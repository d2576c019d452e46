import { join } from "node:path";

const OWNER_FILE = "owner.json";

interface TaskOwner {
  runnerPid: number;
  pgid: number;
}

/** Records which runner started a task, and the task's process group, in its directory. */
export async function writeTaskOwner(dir: string, pgid: number): Promise<void> {
  const owner: TaskOwner = { runnerPid: Deno.pid, pgid };
  await Deno.writeTextFile(join(dir, OWNER_FILE), JSON.stringify(owner));
}

/**
 * Cleans up after runners that died without doing it themselves (SIGKILL, OOM kill): kills
 * the process groups of their tasks and removes their FIFO directories. Directories of live
 * runners sharing the work dir are left alone.
 *
 * @param workDir the runner's work directory
 * @returns how many stale task directories were removed
 */
export async function reapStaleTasks(workDir: string): Promise<number> {
  let reaped = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(workDir));
  } catch {
    return 0; // no work dir yet
  }
  for (const entry of entries) {
    if (!entry.isDirectory || !entry.name.startsWith("task-")) continue;
    const dir = join(workDir, entry.name);
    let owner: TaskOwner;
    try {
      owner = JSON.parse(await Deno.readTextFile(join(dir, OWNER_FILE)));
    } catch {
      continue; // being set up by a live runner, or not ours
    }
    if (owner.runnerPid === Deno.pid || isAlive(owner.runnerPid)) continue;
    try {
      Deno.kill(-owner.pgid, "SIGKILL");
    } catch {
      // the group is already gone
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    reaped++;
  }
  return reaped;
}

// Deno lets only a program with every permission read `/proc`, so ask the kernel instead:
// SIGCONT changes nothing for a running process and fails only when there is none. A zombie
// or a reused pid counts as alive, which errs on the side of leaving things be.
function isAlive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}
