import { errorMessage } from "../util/async.ts";

/** Something bytes can be written to, part by part (stdout, a file). */
export interface ByteWriter {
  write(bytes: Uint8Array): Promise<number>;
}

/** Writes all of `bytes`, however many calls the writer needs. */
export async function writeAll(writer: ByteWriter, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await writer.write(bytes.subarray(written));
}

/**
 * Delivers a task's output: to `file` when given, else to stdout as raw bytes, ended by a
 * newline when stdout is a terminal and the output does not end with one (so that the prompt
 * starts on a line of its own; a pipe or a redirection gets the bytes as they are).
 *
 * @throws {Error} naming the file when it cannot be written
 */
export async function deliverOutput(
  bytes: Uint8Array,
  options: { file?: string | undefined; stdout?: ByteWriter & { isTerminal?(): boolean } } = {},
): Promise<void> {
  if (options.file !== undefined) {
    try {
      await Deno.writeFile(options.file, bytes);
    } catch (error) {
      throw new Error(`Cannot write output file "${options.file}": ${errorMessage(error)}`, {
        cause: error,
      });
    }
    return;
  }
  const stdout = options.stdout ?? Deno.stdout;
  await writeAll(stdout, bytes);
  const unended = bytes.length > 0 && bytes[bytes.length - 1] !== 0x0a;
  if (unended && stdout.isTerminal?.()) await writeAll(stdout, new Uint8Array([0x0a]));
}

/** Writes one line of text to stdout (a JSON response in `--json` mode). */
export async function writeLine(text: string, stdout: ByteWriter = Deno.stdout): Promise<void> {
  await writeAll(stdout, new TextEncoder().encode(`${text}\n`));
}
