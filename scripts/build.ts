/**
 * Builds self-contained `taskrunner` binaries with `deno compile`.
 *
 * Usage:
 *
 *     deno run --allow-read --allow-write --allow-run --allow-env scripts/build.ts \
 *       [--target x86_64-unknown-linux-gnu|aarch64-unknown-linux-gnu|all] [--out dist]
 *
 * For each requested target it runs `deno compile` on `main.ts` with the same
 * permission flags as `deno task compile` and writes `<out>/taskrunner-<target>`,
 * then prints each binary's size in MiB. The default target is the host's.
 *
 * `deno compile` needs the `denort` runtime of the target, which it downloads
 * unless the `DENORT_BIN` environment variable names a local one. This script
 * passes its environment through unchanged, so `DENORT_BIN` works as usual and
 * is reported when set. A `denort` binary fits exactly one target, so when
 * `DENORT_BIN` is set and more than one target is requested, only the host
 * target is built.
 *
 * Exits non-zero with a message naming the target when `deno compile` fails.
 *
 * @module
 */

import { RUN_PERMISSIONS, RUN_V8_FLAGS } from "../src/permissions.ts";

/** Targets this script knows how to build. */
export const TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] as const;

/** One of {@link TARGETS}. */
export type Target = typeof TARGETS[number];

/** Parsed command-line options. */
export interface BuildOptions {
  /** Targets to build, in order. */
  targets: Target[];
  /** Output directory, relative to the current directory or absolute. */
  out: string;
}

const USAGE =
  `Usage: deno run --allow-read --allow-write --allow-run --allow-env scripts/build.ts \\
    [--target ${TARGETS.join("|")}|all] [--out dist]

Builds <out>/taskrunner-<target> with deno compile (default target: the host's,
default out: dist). Set DENORT_BIN=/path/to/denort to use a local denort runtime
instead of downloading one (one target only).`;

class UsageError extends Error {}

function isTarget(value: string): value is Target {
  return (TARGETS as readonly string[]).includes(value);
}

/** The host's target triple, if it is one this script builds. */
export function hostTarget(): Target | undefined {
  const target = Deno.build.target;
  return isTarget(target) ? target : undefined;
}

/** Parses `--target X`, `--target=X`, `--out D`, `--out=D`, `--help`. */
export function parseArgs(args: readonly string[]): BuildOptions | "help" {
  let target: string | undefined;
  let out = "dist";
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg === "--help" || arg === "-h") return "help";
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    if (name !== "--target" && name !== "--out") {
      throw new UsageError(`unknown argument: ${arg}`);
    }
    let value: string | undefined;
    if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      value = args[i + 1];
      i++;
    }
    if (value === undefined || value === "") throw new UsageError(`${name} needs a value`);
    if (name === "--target") target = value;
    else out = value;
  }

  let targets: Target[];
  if (target === undefined) {
    const host = hostTarget();
    if (host === undefined) {
      throw new UsageError(
        `the host target ${Deno.build.target} is not one of ${TARGETS.join(", ")}; ` +
          "pass --target",
      );
    }
    targets = [host];
  } else if (target === "all") {
    targets = [...TARGETS];
  } else if (isTarget(target)) {
    targets = [target];
  } else {
    throw new UsageError(`unknown target: ${target} (expected ${TARGETS.join(", ")} or all)`);
  }
  return { targets, out };
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** Runs `deno compile` for one target; returns the output path, or throws with a message. */
async function compile(root: string, target: Target, outDir: string): Promise<string> {
  const output = `${outDir}/taskrunner-${target}`;
  const args = [
    "compile",
    ...RUN_PERMISSIONS,
    ...RUN_V8_FLAGS,
    "--target",
    target,
    "--output",
    output,
    "main.ts",
  ];
  console.log(`\n==> deno ${args.join(" ")}`);
  // The environment is inherited (no clearEnv), so deno sees DENORT_BIN itself.
  const command = new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  });
  let status: Deno.CommandStatus;
  try {
    status = await command.spawn().status;
  } catch (err) {
    throw new Error(`could not run ${Deno.execPath()}: ${(err as Error).message}`);
  }
  if (!status.success) {
    const how = status.signal !== null ? `signal ${status.signal}` : `exit code ${status.code}`;
    const hint = Deno.env.get("DENORT_BIN")
      ? `Check that DENORT_BIN is the denort of deno ${Deno.version.deno} built for ${target}.`
      : "If it could not download the denort runtime (no network access), set DENORT_BIN to " +
        `a local denort binary of deno ${Deno.version.deno} built for ${target}.`;
    throw new Error(`deno compile failed for ${target} (${how}). See its error above. ${hint}`);
  }
  return output;
}

async function main(args: readonly string[]): Promise<number> {
  let options: BuildOptions | "help";
  try {
    options = parseArgs(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  if (options === "help") {
    console.log(USAGE);
    return 0;
  }

  const root = decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
  const outDir = options.out.startsWith("/") ? options.out : `${Deno.cwd()}/${options.out}`;
  let targets = options.targets;

  const denortBin = Deno.env.get("DENORT_BIN");
  if (denortBin !== undefined && denortBin !== "") {
    console.log(`Using DENORT_BIN=${denortBin} (deno compile reads it from the environment).`);
    try {
      const info = await Deno.stat(denortBin);
      if (!info.isFile) console.warn(`warning: DENORT_BIN ${denortBin} is not a regular file`);
      // The deno CLI is not a denort: a binary built on it ignores the embedded program
      // and behaves as plain `deno` (starts the REPL).
      if (await Deno.realPath(denortBin) === await Deno.realPath(Deno.execPath())) {
        console.error(
          `error: DENORT_BIN ${denortBin} is the deno CLI itself, not the denort runtime; ` +
            "the compiled binary would not run main.ts",
        );
        return 2;
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      console.error(`error: DENORT_BIN ${denortBin} does not exist`);
      return 2;
    }
    const host = hostTarget();
    if (targets.length > 1) {
      if (host === undefined) {
        console.error(
          `error: DENORT_BIN fits one target only and the host target ${Deno.build.target} ` +
            "is not buildable here; pass a single --target",
        );
        return 2;
      }
      console.log(
        `DENORT_BIN fits one target only: building just the host target ${host} ` +
          `instead of ${targets.join(", ")}.`,
      );
      targets = [host];
    } else if (targets[0] !== host) {
      console.warn(
        `warning: DENORT_BIN must be a denort built for ${targets[0]}, ` +
          `not the host's ${Deno.build.target}`,
      );
    }
  }

  await Deno.mkdir(outDir, { recursive: true });

  const built: { target: Target; path: string; size: number }[] = [];
  for (const target of targets) {
    try {
      const path = await compile(root, target, outDir);
      const { size } = await Deno.stat(path);
      built.push({ target, path, size });
    } catch (err) {
      console.error(`\nerror: ${(err as Error).message}`);
      return 1;
    }
  }

  console.log("\nBuilt:");
  for (const { path, size } of built) {
    console.log(`  ${path}  ${mib(size)}`);
  }
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
