import { LOG_SETTINGS, resolveSettings } from "../config/settings.ts";
import { Logger } from "../observability/log.ts";

/** What a command takes from the program around it. */
export interface CommandContext {
  /** The environment settings are read from, and tasks inherit; tests pass their own. */
  readonly env: Record<string, string | undefined>;
  /** Records the exit code of a command that ends with one of its own (`run`, `submit`). */
  setExitCode(code: number): void;
}

/** The logger the log settings ask for, from a command's options and the environment. */
export function commandLogger(
  options: Record<string, unknown>,
  context: Pick<CommandContext, "env">,
): Logger {
  const config = resolveSettings(LOG_SETTINGS, { options, env: context.env });
  return new Logger({ level: config.logLevel, format: config.logFormat });
}
