/**
 * Tells whether the kernel's out-of-memory killer killed a process of the runner's cgroup while
 * a task ran: the `oom_kill` count of the cgroup's `memory.events` (cgroup v2) or
 * `memory.oom_control` (cgroup v1), read before and after. A task killed by SIGKILL while the
 * count rose was most likely killed for memory, which its `FAILED` text then says.
 *
 * @module
 */
import { libc } from "../os/libc.ts";
import { readProcFile } from "../os/proc_files.ts";

/** The `oom_kill` count of a task's cgroup before and after it ran. */
export interface OomKills {
  /** The file the counts were read from. */
  path: string;
  before: number;
  after: number;
}

let detected: string | null | undefined;

/**
 * The file holding the `oom_kill` count of the runner's own memory cgroup (its tasks are in
 * it too), or null where there is none: cgroup v2 `memory.events`, else cgroup v1
 * `memory.oom_control`. Found once.
 */
export function runnerMemoryEventsPath(): string | null {
  detected ??= findMemoryEvents();
  return detected;
}

function findMemoryEvents(): string | null {
  const text = readText("/proc/self/cgroup") ?? "";
  const candidates: string[] = [];
  for (const line of text.split("\n")) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (path === undefined) continue;
    // In a cgroup namespace the path is "/" and the mount is the cgroup itself.
    if (controllers === "") {
      candidates.push(`/sys/fs/cgroup${trimSlash(path)}/memory.events`);
    } else if (controllers!.split(",").includes("memory")) {
      candidates.push(`/sys/fs/cgroup/memory${trimSlash(path)}/memory.oom_control`);
      candidates.push("/sys/fs/cgroup/memory/memory.oom_control");
    }
  }
  candidates.push("/sys/fs/cgroup/memory.events");
  return candidates.find((path) => readOomKillCount(path) !== undefined) ?? null;
}

function trimSlash(path: string): string {
  return path === "/" ? "" : path.replace(/\/$/, "");
}

/**
 * The `oom_kill` line of a cgroup's `memory.events` or `memory.oom_control`, or undefined when
 * the file cannot be read or has none (a kernel before 4.13).
 *
 * @param path the file
 */
export function readOomKillCount(path: string): number | undefined {
  const match = /^oom_kill (\d+)$/m.exec(readText(path) ?? "");
  return match ? Number(match[1]) : undefined;
}

// Through libc where it can (Deno grants `/proc` and `/sys` only with every permission).
function readText(path: string): string | undefined {
  const lib = libc();
  if (lib) {
    const bytes = readProcFile(lib, path);
    return bytes && new TextDecoder().decode(bytes);
  }
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}
