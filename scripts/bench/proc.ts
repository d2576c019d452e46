/**
 * What the benchmark reads of a process in `/proc`: memory, CPU time, descriptors. Another
 * process's entries are read through `cat`: Deno asks for `--allow-all` to read them, and the
 * benchmark runs with the runner's permissions.
 *
 * @module
 */

/** Memory figures of a process, in bytes, from `/proc/<pid>/status`. */
export interface MemoryStatus {
  /** Resident set size now. */
  rss: number;
  /** Peak resident set size (since start, or since the last {@linkcode resetPeakRss}). */
  hwm: number;
}

/**
 * Reads VmRSS and VmHWM of a process. Through `cat`: Deno asks for `--allow-all` to read
 * another process's `/proc` entries, and the benchmark runs with the runner's permissions.
 */
export async function readMemory(pid: number): Promise<MemoryStatus> {
  return memoryOfStatus(await shell(`cat /proc/${pid}/status`));
}

/** VmRSS and VmHWM from the text of a `/proc/<pid>/status`; 0 for a field it lacks. */
export function memoryOfStatus(status: string): MemoryStatus {
  const kib = (field: string) => {
    const match = status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return match ? Number(match[1]) * 1024 : 0;
  };
  return { rss: kib("VmRSS"), hwm: kib("VmHWM") };
}

/**
 * CPU time (user + system) a process has used so far, in milliseconds, from
 * `/proc/<pid>/stat` (clock ticks of 10 ms); undefined when it cannot be read.
 */
export async function cpuMs(pid: number): Promise<number | undefined> {
  return await statTicksMs(pid, "own");
}

/**
 * CPU time (user + system) of the children a process has waited for, in milliseconds, from
 * `/proc/<pid>/stat` (cutime + cstime); undefined when it cannot be read.
 */
export async function childrenCpuMs(pid: number): Promise<number | undefined> {
  return await statTicksMs(pid, "children");
}

async function statTicksMs(pid: number, clock: StatClock): Promise<number | undefined> {
  try {
    return cpuMsOfStat(await shell(`cat /proc/${pid}/stat`), clock);
  } catch {
    return undefined;
  }
}

/** Whose CPU time {@linkcode cpuMsOfStat} reads: the process's own, or its reaped children's. */
export type StatClock = "own" | "children";

// The user and system fields of `/proc/<pid>/stat`, counted after the command name.
const STAT_FIELDS: Record<StatClock, readonly [number, number]> = {
  own: [11, 12], // utime, stime
  children: [13, 14], // cutime, cstime
};

/**
 * CPU time (user + system) in milliseconds from the text of a `/proc/<pid>/stat` (clock ticks
 * of 10 ms).
 */
export function cpuMsOfStat(stat: string, clock: StatClock = "own"): number {
  const [user, system] = STAT_FIELDS[clock];
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[user]) + Number(fields[system])) * 10;
}

/** The pid of the local RabbitMQ node (its Erlang VM), if there is one. */
export async function brokerPid(): Promise<number | undefined> {
  const pid = Number((await shell("pgrep -o beam.smp || true")).trim());
  return pid > 0 ? pid : undefined;
}

// A broker using less than this share of a core is at rest (its own timers and statistics).
const QUIET_CORE_SHARE = 0.1;
const QUIET_SAMPLE_MS = 250;

/**
 * Waits until the broker is at rest: less than a tenth of a core over a quarter of a second
 * (after a large message it keeps working for seconds: garbage collection, the message store
 * writing persistent messages), at most `maxMs`. Nothing is waited for when `pid` is undefined.
 *
 * @returns whether it came to rest in time
 */
export async function brokerAtRest(pid: number | undefined, maxMs = 15_000): Promise<boolean> {
  if (pid === undefined) return true;
  const deadline = performance.now() + maxMs;
  let before = await cpuMs(pid);
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, QUIET_SAMPLE_MS));
    const after = await cpuMs(pid);
    if (before === undefined || after === undefined) return false;
    if (after - before < QUIET_CORE_SHARE * QUIET_SAMPLE_MS) return true;
    before = after;
  }
  return false;
}

/** The number of a process's open file descriptors, or undefined when it cannot be read. */
export async function openFds(pid: number): Promise<number | undefined> {
  try {
    return Number((await shell(`ls /proc/${pid}/fd | wc -l`)).trim());
  } catch {
    return undefined;
  }
}

/** Resets a process's VmHWM to its current RSS (Linux `clear_refs` value 5). */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await shell(`echo 5 > /proc/${pid}/clear_refs`);
    return true;
  } catch {
    return false;
  }
}

async function shell(script: string): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command("sh", { args: ["-c", script] })
    .output();
  const decoder = new TextDecoder();
  if (!success) throw new Error(`"${script}" failed: ${decoder.decode(stderr).trim()}`);
  return decoder.decode(stdout);
}
