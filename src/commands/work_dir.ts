import { ConfigError } from "../config/settings.ts";
import { errorMessage } from "../util/async.ts";

/**
 * Makes the work dir (and its parents) if missing, before anything else starts: a dir the
 * runner cannot use would otherwise fail every task, each with the same error.
 *
 * @param workDir the `--work-dir` setting
 * @throws {ConfigError} naming the setting, when the dir cannot be made or is not a directory
 */
export function prepareWorkDir(workDir: string): void {
  try {
    Deno.mkdirSync(workDir, { recursive: true });
  } catch (error) {
    throw new ConfigError(`Invalid setting --work-dir "${workDir}": ${reason(error)}`);
  }
}

function reason(error: unknown): string {
  // Deno allows /dev, /proc and /sys paths only with --allow-all, which the runner is not given.
  if (error instanceof Deno.errors.NotCapable) {
    return "the runner may not use this path (Deno allows paths under /dev, /proc or /sys only " +
      "with --allow-all); choose a directory elsewhere, e.g. a tmpfs mounted at the work dir";
  }
  return errorMessage(error);
}
