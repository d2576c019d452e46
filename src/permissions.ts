/**
 * The permissions the taskrunner program is granted by `deno task start` and
 * `deno task compile`.
 *
 * `deno.json` spells them out as well, because JSON cannot import; keep the two the same.
 *
 * @example Run the program as `deno task start` does
 * ```ts
 * new Deno.Command(Deno.execPath(), { args: ["run", ...RUN_PERMISSIONS, "main.ts", "serve"] });
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
