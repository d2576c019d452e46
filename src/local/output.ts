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
 * Delivers a task's output: to `file` when given, else to stdout as raw bytes.
 *
 * @throws {Error} naming the file when it cannot be written
 */
export async function deliverOutput(
  bytes: Uint8Array,
  options: { file?: string | undefined; stdout?: ByteWriter } = {},
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
  await writeAll(options.stdout ?? Deno.stdout, bytes);
}

/** Writes one line of text to stdout (a JSON response in `--json` mode). */
export async function writeLine(text: string, stdout: ByteWriter = Deno.stdout): Promise<void> {
  await writeAll(stdout, new TextEncoder().encode(`${text}\n`));
}
