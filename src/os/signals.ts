/** Linux signal numbers (the same on x86_64 and aarch64) by the names Deno uses. */
const NAMES: readonly (Deno.Signal | undefined)[] = [
  undefined,
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
];

/** The name of signal `signo`, or null for a number without one (a real-time signal). */
export function signalName(signo: number): Deno.Signal | null {
  return NAMES[signo] ?? null;
}

/** The number of the signal Deno calls `name`. */
export function signalNumber(name: Deno.Signal): number | undefined {
  const signo = NAMES.indexOf(name);
  return signo > 0 ? signo : undefined;
}
