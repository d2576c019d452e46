import type { Command, OptionValues } from "@commander-js/extra-typings";
import { parseDuration } from "../local/duration.ts";
import { DEFAULT_TIMEOUT_MINUTES } from "../protocol/mod.ts";

/** Adds the options `run` and `submit` share: input, time limit, output, JSON responses. */
export function addTaskOptions<Args extends unknown[], Opts extends OptionValues>(
  command: Command<Args, Opts>,
) {
  return command
    .option("--input <file>", "read the input from a file (- for stdin)")
    .option("--input-json <json>", "give the input inline, as JSON text")
    .option(
      "--timeout <duration>",
      `inactivity limit of the task (progress restarts it): 90s, 5m, 1.5m, 2h, or a number of minutes (default ${DEFAULT_TIMEOUT_MINUTES}m)`,
      parseDuration,
    )
    .option("--output <file>", "write the output to a file instead of stdout")
    .option("--json", "print every response, one JSON object per line, on stdout");
}

/** The task options as commander gives them. */
export interface TaskOptions {
  input?: string | undefined;
  inputJson?: string | undefined;
  timeout?: number | undefined;
}

/** The time limit asked for, in milliseconds; the protocol's default when none was. */
export function timeoutOf(options: TaskOptions): number {
  return options.timeout ?? DEFAULT_TIMEOUT_MINUTES * 60_000;
}

/** Where the input comes from: a file (`-` for stdin), inline JSON, or neither. */
export function inputSource(options: TaskOptions): { file?: string; json?: string } {
  return {
    ...(options.input !== undefined ? { file: options.input } : {}),
    ...(options.inputJson !== undefined ? { json: options.inputJson } : {}),
  };
}
