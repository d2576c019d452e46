/**
 * Finds the processes of a dead runner's tasks without any record of them: every task gets
 * {@linkcode TASK_DIR_VARIABLE} (its directory, whose name carries its runner's pid and start
 * time) in its environment from its exec on, and its children, daemons that left its group
 * and session included, inherit it. A runner killed at any instant (between a spawn and its
 * owner record, or before the record was read) leaves tasks that the next one finds this way.
 *
 * @module
 */
import { basename } from "node:path";
import { type ProcLibc, procLibc } from "../os/libc.ts";
import { environValue, listDir, readProcLink } from "../os/proc_files.ts";

/** The variable every task gets, holding its directory: whose task it is, even orphaned. */
export const TASK_DIR_VARIABLE = "TASKRUNNER_TASK_DIR";

const SIGKILL = 9;
const SIGSTOP = 19;
// Bounds the scans should processes keep appearing (they cannot once all are stopped).
const MAX_SCANS = 64;

/**
 * Kills every process whose task directory (from its environment) `isStale` says belongs to a
 * runner that has died. They are stopped first, scan after scan, until a scan of `/proc` finds
 * no new one (a stopped process cannot fork; a child forked before its parent stopped shows up
 * in the next scan), then all killed at once. A process that cleared its environment cannot
 * be told and is left; so is every process where libc or `/proc` cannot be used (the owner
 * record's process group is then all there is), and every process in another PID namespace: a
 * pid in its directory's name is its runner's pid in that namespace (a container's), which
 * says nothing of the process with that pid here.
 *
 * @param isStale whether a task directory's name belongs to a dead runner
 * @returns how many processes were killed
 */
export function killStaleTaskProcesses(isStale: (dirName: string) => boolean): number {
  const lib = procLibc();
  if (!lib) return 0;
  const stopped = new Set<number>();
  for (let scan = 0; scan < MAX_SCANS; scan++) {
    const found = staleTaskProcesses(lib, isStale).filter((pid) => !stopped.has(pid));
    if (found.length === 0) break;
    for (const pid of found) {
      lib.kill(pid, SIGSTOP);
      stopped.add(pid);
    }
  }
  let killed = 0;
  for (const pid of stopped) if (lib.kill(pid, SIGKILL) === 0) killed++;
  return killed;
}

function staleTaskProcesses(lib: ProcLibc, isStale: (dirName: string) => boolean): number[] {
  const pids: number[] = [];
  const ours = readProcLink(lib, "/proc/self/ns/pid");
  for (const name of listDir(lib, "/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 1 || pid === Deno.pid) continue;
    const dir = environValue(lib, pid, TASK_DIR_VARIABLE);
    if (dir === undefined || !isStale(basename(dir))) continue;
    // Looked at only for a task's process: most processes have no task directory.
    // Its PID namespace (`pid:[<inode>]`), unreadable only where ours is too.
    if (readProcLink(lib, `/proc/${pid}/ns/pid`) === ours) pids.push(pid);
  }
  return pids;
}
