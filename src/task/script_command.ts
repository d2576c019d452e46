import { delimiter, isAbsolute, join, resolve } from "node:path";
import { TaskStartError } from "./errors.ts";

/** How the pipe arguments are spelled: `--input_pipe` (every Terarium task) or `--input-pipe`. */
export type PipeArgStyle = "underscore" | "hyphen";

/** Longest script name accepted in a request. */
export const MAX_SCRIPT_LENGTH = 1024;

/** What to execute for a task: the program and its arguments. */
export interface ScriptCommand {
  program: string;
  args: string[];
}

/** Settings that decide how a script name becomes a command. */
export interface ScriptCommandOptions {
  /** Interpreter for `.py` scripts. */
  python: string;
  /** Script patterns allowed to run (`*` matches anything); empty allows any script. */
  allowedScripts: readonly string[];
  /** `PATH` to search executables on. */
  path: string;
}

/**
 * Checks a requested script name and turns it into the command to spawn, without a shell.
 *
 * @param script the request's `script`: a `.py` file or an executable name or path
 * @param options interpreter, allow-list and search path
 * @throws {TaskStartError} when the script is not allowed, malformed, missing or not executable
 */
export async function resolveScriptCommand(
  script: string,
  options: ScriptCommandOptions,
): Promise<ScriptCommand> {
  if (script.length === 0 || script.length > MAX_SCRIPT_LENGTH) {
    throw new TaskStartError(
      `Cannot start task: script name must be 1 to ${MAX_SCRIPT_LENGTH} characters long`,
    );
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(script)) {
    throw new TaskStartError(
      `Cannot start task ${JSON.stringify(script)}: script name contains control characters`,
    );
  }
  if (options.allowedScripts.length > 0 && !isScriptAllowed(script, options.allowedScripts)) {
    throw new TaskStartError(`Cannot start task "${script}": script not allowed`);
  }
  if (script.endsWith(".py")) {
    const file = resolve(script);
    if (!await isFile(file)) {
      throw new TaskStartError(`Cannot start task "${script}": script file not found`, {
        javaText: `Script file: ${script} not found`,
      });
    }
    const python = await findExecutable(options.python, options.path).catch(() => {
      throw new TaskStartError(
        `Cannot start task "${script}": interpreter "${options.python}" not found or not executable`,
      );
    });
    return { program: python, args: [file] };
  }
  return { program: await findExecutable(script, options.path), args: [] };
}

/**
 * Whether `script` matches one of the allow-list patterns, where `*` matches any run of
 * characters and everything else matches itself.
 */
export function isScriptAllowed(script: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => {
    const source = pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*");
    return new RegExp(`^${source}$`, "s").test(script);
  });
}

/** The arguments every task gets, in the configured spelling. */
export function pipeArgs(
  id: string,
  pipes: { input: string; output: string; progress: string },
  style: PipeArgStyle,
): string[] {
  const sep = style === "underscore" ? "_" : "-";
  return [
    "--id",
    id,
    `--input${sep}pipe`,
    pipes.input,
    `--output${sep}pipe`,
    pipes.output,
    `--progress${sep}pipe`,
    pipes.progress,
  ];
}

async function findExecutable(name: string, searchPath: string): Promise<string> {
  const candidates = name.includes("/")
    ? [isAbsolute(name) ? name : resolve(name)]
    : searchPath.split(delimiter).filter((dir) => dir.length > 0).map((dir) => join(dir, name));
  let found: string | undefined;
  for (const candidate of candidates) {
    const info = await Deno.stat(candidate).catch(() => undefined);
    if (!info?.isFile) continue;
    found ??= candidate;
    if (((info.mode ?? 0) & 0o111) !== 0) return candidate;
  }
  if (found !== undefined) {
    throw new TaskStartError(`Cannot start task "${name}": "${found}" is not executable`);
  }
  const where = name.includes("/") ? "file not found" : "executable not found on PATH";
  throw new TaskStartError(`Cannot start task "${name}": ${where}`, {
    javaText: `Cannot run program "${name}": error=2, No such file or directory`,
  });
}

async function isFile(path: string): Promise<boolean> {
  const info = await Deno.stat(path).catch(() => undefined);
  return info?.isFile ?? false;
}
