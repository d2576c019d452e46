import type { TerminalResponse } from "../protocol/terminal_response.ts";

/** Exit codes of `run` and `submit --follow`, as shell tools have them. */
export const EXIT_CODES = {
  /** The task succeeded. */
  success: 0,
  /** The task failed, or could not start. */
  failed: 1,
  /** The task ran out of time (as `timeout(1)` exits). */
  timeout: 124,
  /** The task was cancelled (128 + SIGINT, as a shell reports Ctrl-C). */
  cancelled: 130,
} as const;

/** The exit code of `run` for the terminal response its task got. */
export function exitCodeOf(response: TerminalResponse): number {
  switch (response.status) {
    case "SUCCESS":
      return EXIT_CODES.success;
    case "FAILED":
      return response.timedOut ? EXIT_CODES.timeout : EXIT_CODES.failed;
    case "CANCELLED":
      return EXIT_CODES.cancelled;
  }
}
