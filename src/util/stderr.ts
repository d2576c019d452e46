const encoder = new TextEncoder();

// Lines that could not be written since the last that could.
let lost = 0;

/**
 * Writes `text` to stderr whole and at once: synchronous, so that log lines and progress
 * output interleave in the order they were written, even as the process ends.
 *
 * A write that fails (a reader that went away, a full disk, a journald restart) never
 * throws: losing a log line must not take the runner and its running tasks down. The text is
 * dropped, and the next write that works says how many were lost.
 */
export function writeStderr(text: string): void {
  if (lost > 0 && tryWrite(`(${lost} lines of stderr output were lost: stderr failed)\n`)) {
    lost = 0;
  }
  if (!tryWrite(text)) lost++;
}

/** How many writes to stderr were lost since the last that worked. */
export function lostStderrWrites(): number {
  return lost;
}

function tryWrite(text: string): boolean {
  const bytes = encoder.encode(text);
  let written = 0;
  try {
    while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
    return true;
  } catch {
    return false;
  }
}
