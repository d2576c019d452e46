/**
 * The permissions the taskrunner program is granted by `deno task start` and
 * `deno task compile`.
 *
 * `deno.json` spells them out as well, because JSON cannot import; keep the two the same.
 *
 * @example Run the program as `deno task start` does
 * ```ts
 * new Deno.Command(Deno.execPath(), {
 *   args: ["run", ...RUN_PERMISSIONS, ...RUN_V8_FLAGS, "main.ts", "serve"],
 * });
 * ```
 */
export const RUN_PERMISSIONS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-net",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
];

/**
 * The V8 settings the taskrunner program runs with, wherever it is started: `deno task start`
 * and `taskrunner`, `deno task compile` (which bakes them into the binary), the container
 * image's build, `scripts/build.ts`, and the benchmark's runner. `deno.json` and the
 * Dockerfile spell them out as well; keep them the same.
 *
 * `--max-semi-space-size=8` caps V8's young generation at 8 MiB a half. V8 grows it with the
 * allocation rate up to its own maximum (32 MiB a half here) and never gives it back while work
 * goes on: a runner with a thousand running tasks, a thousand progress responses a second, held
 * some 50 MB in it. Capped, the runner's RSS per running task at 1,000 tasks went from 121–142
 * KiB to 72–95 KiB, with no more CPU per task in the throughput figure; a cap of 2 MiB cost 30 %
 * more CPU per task there (more objects promoted before they die).
 */
export const RUN_V8_FLAGS: readonly string[] = ["--v8-flags=--max-semi-space-size=8"];
