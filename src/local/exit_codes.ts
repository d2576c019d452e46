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
