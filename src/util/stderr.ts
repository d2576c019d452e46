const encoder = new TextEncoder();

/**
 * Writes `text` to stderr whole and at once: synchronous, so that log lines and progress
 * output interleave in the order they were written, even as the process ends.
 */
export function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}
