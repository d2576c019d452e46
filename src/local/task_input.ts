import { ConfigError } from "../config/settings.ts";
import { errorMessage } from "../util/async.ts";

/** Where a task's input comes from: at most one of a file or inline JSON; else stdin. */
export interface InputSource {
  /** A file to read; `-` is stdin. */
  file?: string | undefined;
  /** Inline JSON text, sent as it is (after checking that it parses). */
  json?: string | undefined;
}

/**
 * Reads the input of a task run from the command line: `--input FILE`, `--input-json TEXT`,
 * or stdin when it is not a terminal (so that `... < file` and pipes work); otherwise empty.
 *
 * @param source the options given
 * @param options `stdin` to read instead of the process's own (tests)
 * @throws {ConfigError} when both are given, the JSON does not parse or the file cannot be read
 */
export async function readTaskInput(
  source: InputSource,
  options: { stdin?: { readable: ReadableStream<Uint8Array>; isTerminal(): boolean } } = {},
): Promise<Uint8Array> {
  const stdin = options.stdin ?? Deno.stdin;
  if (source.file !== undefined && source.json !== undefined) {
    throw new ConfigError("Give either --input or --input-json, not both");
  }
  if (source.json !== undefined) {
    try {
      JSON.parse(source.json);
    } catch (error) {
      throw new ConfigError(`Invalid --input-json: ${errorMessage(error)}`);
    }
    return new TextEncoder().encode(source.json);
  }
  if (source.file === "-") return await readAll(stdin.readable);
  if (source.file !== undefined) {
    try {
      return await Deno.readFile(source.file);
    } catch (error) {
      throw new ConfigError(`Cannot read input file "${source.file}": ${errorMessage(error)}`);
    }
  }
  if (stdin.isTerminal()) return new Uint8Array();
  return await readAll(stdin.readable);
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
