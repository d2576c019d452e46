import { delimiter, isAbsolute, join, resolve } from "node:path";
import {
  AllowList,
  hasParentSegment,
  isInPathDirectory,
  matchesAny,
  realPathOf,
} from "./allow_list.ts";
import { ScriptNotAllowedError, TaskStartError } from "./errors.ts";

/** How the pipe arguments are spelled: `--input_pipe` (every Terarium task) or `--input-pipe`. */
export type PipeArgStyle = "underscore" | "hyphen";

/** Longest script name accepted in a request. */
export const MAX_SCRIPT_LENGTH = 1024;

/** What to execute for a task: the program and its arguments. */
export interface ScriptCommand {
  program: string;
  args: string[];
  /**
   * The program as the Java runner named it in its errors (the script, or the interpreter of a
   * `.py` script): `Cannot run program "<name>": error=2, No such file or directory`.
   */
  name?: string;
}

/** Settings that decide how a script name becomes a command. */
export interface ScriptCommandOptions {
  /** Interpreter for `.py` scripts. */
  python: string;
  /** Script patterns allowed to run (globs, see `allow_list.ts`); empty allows any script. */
  allowedScripts: readonly string[];
  /** `PATH` to search executables on. */
  path: string;
}

/**
 * Checks a requested script name and turns it into the command to spawn, without a shell.
 * With an allow-list, what runs is the real path that was checked (see `allow_list.ts`).
 *
 * @param script the request's `script`: a `.py` file or an executable name or path
 * @param options interpreter, allow-list and search path
 * @throws {TaskStartError} when the script is not allowed, malformed, missing or not executable
 */
export function resolveScriptCommand(
  script: string,
  options: ScriptCommandOptions,
): ScriptCommand {
  checkScriptName(script);
  const allowList = options.allowedScripts.length > 0
    ? AllowList.resolve(options.allowedScripts)
    : undefined;
  if (allowList && hasParentSegment(script)) {
    throw new ScriptNotAllowedError(script, ': a path with a ".." segment is refused');
  }
  if (script.endsWith(".py")) {
    const file = allowedPath(script, resolve(script), allowList);
    if (!isFile(file)) {
      throw new TaskStartError(`Cannot start task "${script}": script file not found`, {
        javaText: `Script file: ${script} not found`,
      });
    }
    let python: string;
    try {
      python = findExecutable(options.python, options.path);
    } catch {
      throw new TaskStartError(
        `Cannot start task "${script}": interpreter "${options.python}" not found or not executable`,
        { javaText: cannotRunText(options.python, ENOENT) },
      );
    }
    return { program: python, args: [file], name: options.python };
  }
  if (script.includes("/")) {
    const file = allowedPath(script, resolve(script), allowList);
    return { program: findExecutable(file, options.path, script), args: [], name: script };
  }
  if (allowList) {
    return { program: allowedOnPath(script, allowList, options.path), args: [], name: script };
  }
  return { program: findExecutable(script, options.path), args: [], name: script };
}

function checkScriptName(script: string): void {
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
}

/**
 * The file a path script names: without an allow-list, as written; with one, its real path,
 * which must match a path pattern. A missing file is "not allowed" unless its path as written
 * matches, so that a request cannot probe the file system outside the allow-list.
 */
function allowedPath(
  script: string,
  absolute: string,
  allowList: AllowList | undefined,
): string {
  if (!allowList) return absolute;
  const real = realPathOf(absolute);
  if (real === undefined) {
    if (allowList.allowsPath(absolute)) return absolute; // reported missing by the caller
    throw new ScriptNotAllowedError(script);
  }
  if (!allowList.allowsPath(real)) {
    const why = real === absolute ? "" : ": its real path matches no allowed pattern";
    throw new ScriptNotAllowedError(script, why);
  }
  return real;
}

/**
 * The real path of an executable asked for by bare name, when allowed: by a name pattern, if
 * it really lies in a `PATH` directory (not a symlink leading out of them), or by a path
 * pattern that matches its real path.
 */
function allowedOnPath(name: string, allowList: AllowList, path: string): string {
  const byName = allowList.allowsName(name);
  let found: string;
  try {
    found = findExecutable(name, path);
  } catch (error) {
    // Whether a name that is not allowed exists on PATH is none of the requester's business.
    if (byName) throw error;
    throw new ScriptNotAllowedError(name);
  }
  const real = realPathOf(found) ?? found;
  if (allowList.allowsPath(real)) return real;
  if (!byName) throw new ScriptNotAllowedError(name);
  if (isInPathDirectory(real, path)) return real;
  throw new ScriptNotAllowedError(name, `: "${found}" leads out of the PATH directories`);
}

/**
 * Whether `script` matches one of the allow-list patterns as a glob: `*` matches any run of
 * characters but `/`, `**` any run at all, everything else matches itself.
 */
export function isScriptAllowed(script: string, patterns: readonly string[]): boolean {
  return matchesAny(script, patterns);
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

function findExecutable(name: string, searchPath: string, shown = name): string {
  const candidates = name.includes("/")
    ? [isAbsolute(name) ? name : resolve(name)]
    : searchPath.split(delimiter).filter((dir) => dir.length > 0).map((dir) => join(dir, name));
  let found: string | undefined;
  for (const candidate of candidates) {
    const info = statOf(candidate);
    if (!info) continue;
    // A directory or a file without an execute bit: exec fails with EACCES, and the JDK's
    // PATH search reports that rather than ENOENT when nothing else is found.
    found ??= candidate;
    if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return candidate;
  }
  if (found !== undefined) {
    throw new TaskStartError(`Cannot start task "${shown}": "${found}" is not executable`, {
      javaText: cannotRunText(shown, EACCES),
    });
  }
  const where = name.includes("/") ? "file not found" : "executable not found on PATH";
  throw new TaskStartError(`Cannot start task "${shown}": ${where}`, {
    javaText: cannotRunText(shown, ENOENT),
  });
}

const ENOENT = 2;
const EACCES = 13;
// glibc's strerror() texts, which the JDK puts in its message.
const STRERROR: Record<number, string> = {
  1: "Operation not permitted",
  2: "No such file or directory",
  7: "Argument list too long",
  8: "Exec format error",
  12: "Cannot allocate memory",
  13: "Permission denied",
  20: "Not a directory",
  21: "Is a directory",
  26: "Text file busy",
  36: "File name too long",
  40: "Too many levels of symbolic links",
};

/**
 * The message of the `IOException` that Java's `ProcessBuilder.start()` throws when the program
 * cannot be executed, which people search their logs for:
 * `Cannot run program "<name>": error=2, No such file or directory`.
 *
 * @param name the program as the request named it
 * @param code the error number of the failed exec
 */
export function cannotRunText(name: string, code: number): string {
  return `Cannot run program "${name}": error=${code}, ${
    STRERROR[code] ?? `Unknown error ${code}`
  }`;
}

function isFile(path: string): boolean {
  return statOf(path)?.isFile ?? false;
}

// In place, as every lookup here: one quick system call, cheaper than a worker thread's hop.
function statOf(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch {
    return undefined;
  }
}
