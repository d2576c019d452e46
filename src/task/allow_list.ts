/**
 * The script allow-list. Two kinds of pattern:
 *
 * - a pattern without `/` (`gollm:*`) is a name pattern: it matches the bare name of a request
 *   (`gollm:embedding`), an executable looked up on `PATH`;
 * - a pattern with `/` (`/srv/tasks/*.py`) is a path pattern: it matches the real path (every
 *   symlink resolved) of the file that will run. A relative one is taken from the runner's
 *   working directory; the directories before its first wildcard are resolved too, so that a
 *   pattern may name a directory through a symlink (`/srv/tasks` -> `/opt/tasks`).
 *
 * `*` matches any run of characters but `/`; `**` matches across `/` (`/srv/**\/*.py` matches
 * `/srv/a.py` and `/srv/a/b/c.py`). Every other character matches itself.
 *
 * @module
 */

import { delimiter, dirname, isAbsolute, resolve } from "node:path";

/** Whether `text` matches the glob `pattern` as a whole (`*` stops at `/`, `**` does not). */
export function globMatches(text: string, pattern: string): boolean {
  return globRegExp(pattern).test(text);
}

/** Whether `text` matches one of the glob patterns as a whole. */
export function matchesAny(text: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => globMatches(text, pattern));
}

function globRegExp(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length;) {
    if (pattern.startsWith("**", i)) {
      let end = i + 2;
      while (pattern[end] === "*") end++;
      // `**/` spans zero or more whole directories, so that `/a/**/b` also matches `/a/b`.
      if (pattern[end] === "/" && (i === 0 || pattern[i - 1] === "/")) {
        source += "(?:.*/)?";
        i = end + 1;
      } else {
        source += ".*";
        i = end;
      }
    } else if (pattern[i] === "*") {
      source += "[^/]*";
      i++;
    } else {
      source += pattern[i]!.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
      i++;
    }
  }
  return new RegExp(`^${source}$`, "s");
}

/** Whether a path has a `..` segment: refused before anything is resolved. */
export function hasParentSegment(path: string): boolean {
  return path.split("/").includes("..");
}

/** Whether a pattern matches paths (it has a `/`) rather than bare names. */
export function isPathPattern(pattern: string): boolean {
  return pattern.includes("/");
}

/**
 * The real path of `path`, or undefined when it does not exist (or cannot be read). Resolved
 * in place, as every file system lookup of a task's start: a few quick system calls, cheaper
 * than a hop to a worker thread each.
 */
export function realPathOf(path: string): string | undefined {
  try {
    return Deno.realPathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * A path pattern made absolute, with its fixed directories (those before the first wildcard)
 * replaced by their real path; a pattern without wildcards is resolved whole. What does not
 * exist is kept as written: it matches nothing that exists anyway.
 */
export function resolvePathPattern(pattern: string, cwd = Deno.cwd()): string {
  const absolute = isAbsolute(pattern) ? pattern : resolve(cwd, pattern);
  const segments = absolute.split("/");
  const wild = segments.findIndex((segment) => segment.includes("*"));
  if (wild === -1) return realPathOf(absolute) ?? absolute;
  const fixed = segments.slice(0, wild).join("/") || "/";
  const real = realPathOf(fixed);
  if (real === undefined) return absolute;
  const rest = segments.slice(wild).join("/");
  return real.endsWith("/") ? real + rest : `${real}/${rest}`;
}

/** An allow-list ready to check requests against, its path patterns resolved. */
export class AllowList {
  readonly #names: readonly string[];
  readonly #paths: readonly string[];

  private constructor(names: readonly string[], paths: readonly string[]) {
    this.#names = names;
    this.#paths = paths;
  }

  /**
   * Resolves the path patterns of `patterns` (their symlinked directories) as they are now.
   *
   * @param patterns the configured patterns
   * @param cwd what relative path patterns are taken from
   */
  static resolve(patterns: readonly string[], cwd = Deno.cwd()): AllowList {
    const names = patterns.filter((pattern) => !isPathPattern(pattern));
    const paths = patterns.filter(isPathPattern).map((pattern) => resolvePathPattern(pattern, cwd));
    return new AllowList(names, paths);
  }

  /** Whether a bare name (no `/`) matches a name pattern. */
  allowsName(name: string): boolean {
    return matchesAny(name, this.#names);
  }

  /** Whether an absolute (real) path matches a path pattern. */
  allowsPath(path: string): boolean {
    return matchesAny(path, this.#paths);
  }
}

/**
 * Whether the real path of an executable found on `PATH` lies in one of the `PATH`
 * directories (each taken by its real path): a symlink on `PATH` that leads elsewhere does not.
 */
export function isInPathDirectory(realPath: string, searchPath: string): boolean {
  const dirs = searchPath.split(delimiter).filter((dir) => dir.length > 0);
  const realDirs = dirs.map((dir) => realPathOf(dir));
  return realDirs.includes(dirname(realPath));
}
