import { writeStderr } from "../util/stderr.ts";

/** How a progress message is shown: a bar when it has a number in `progress`. */
export interface ProgressView {
  /** Done share in [0, 1], when known (from `progress`/`total`, or `progress` alone in [0, 1]). */
  fraction: number | undefined;
  /** The numbers, as shown: `2/3`, `40%`, `17`. */
  label: string;
  /** The message's `message` text, if any. */
  message: string | undefined;
}

// One line of a progress message that is not a bar is cut here.
const MAX_LINE_CHARS = 300;
const BAR_WIDTH = 24;
const CLEAR_LINE = "\r\x1b[2K";

/**
 * Reads a progress message as a bar when it is a JSON object with a number `progress`
 * (and optionally a number `total`).
 *
 * @returns the view, or undefined when the message is anything else
 */
export function progressView(message: Uint8Array): ProgressView | undefined {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(message));
  } catch {
    return undefined;
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return undefined;
  const { progress, total, message: text } = json as Record<string, unknown>;
  if (typeof progress !== "number" || !Number.isFinite(progress)) return undefined;
  const shown = typeof text === "string" && text.length > 0 ? oneLine(text) : undefined;
  if (typeof total === "number" && Number.isFinite(total) && total > 0) {
    return { fraction: clamp(progress / total), label: `${progress}/${total}`, message: shown };
  }
  if (progress >= 0 && progress <= 1) {
    return { fraction: progress, label: percent(progress), message: shown };
  }
  return { fraction: undefined, label: String(progress), message: shown };
}

/** Text of a progress message that is not a bar, on one line. */
export function progressText(message: Uint8Array): string {
  return oneLine(new TextDecoder().decode(message));
}

/**
 * Shows a task's progress and log lines on stderr while it runs: on a terminal, a progress bar
 * redrawn in place with the lines scrolling above it; elsewhere, one plain line per event.
 */
export class ProgressDisplay {
  readonly #terminal: boolean;
  readonly #write: (text: string) => void;
  readonly #columns: () => number;
  /** The bar line currently drawn (terminal only). */
  #bar: string | undefined;

  /**
   * @param options `terminal` draws a bar (default: whether stderr is a terminal); `write`
   * replaces stderr (tests); `columns` gives the terminal width
   */
  constructor(
    options: { terminal?: boolean; write?: (text: string) => void; columns?: () => number } = {},
  ) {
    this.#terminal = options.terminal ?? Deno.stderr.isTerminal();
    this.#write = options.write ?? writeStderr;
    this.#columns = options.columns ?? terminalColumns;
  }

  /** Shows one progress message. */
  progress(message: Uint8Array): void {
    const view = progressView(message);
    if (!view) {
      this.line(`[progress] ${progressText(message)}`);
      return;
    }
    const numbers = view.fraction !== undefined && !view.label.endsWith("%")
      ? `${view.label} ${percent(view.fraction)}`
      : view.label;
    const text = `${numbers}${view.message ? ` ${view.message}` : ""}`;
    if (!this.#terminal) {
      this.line(`[progress] ${text}`);
      return;
    }
    const bar = view.fraction === undefined ? "" : `${drawBar(view.fraction)} `;
    this.#bar = fit(`${bar}${text}`, this.#columns());
    this.#write(`${CLEAR_LINE}${this.#bar}`);
  }

  /** Shows a line the task printed, prefixed with its stream. */
  log(stream: "stdout" | "stderr", line: string): void {
    this.line(`[${stream}] ${line}`);
  }

  /** Shows a line of its own (above the bar on a terminal). */
  line(text: string): void {
    if (this.#bar === undefined) {
      this.#write(`${text}\n`);
      return;
    }
    this.#write(`${CLEAR_LINE}${text}\n${this.#bar}`);
  }

  /** Leaves the last bar drawn as a line of its own; later lines go below it. */
  close(): void {
    if (this.#bar === undefined) return;
    this.#write("\n");
    this.#bar = undefined;
  }
}

function drawBar(fraction: number): string {
  const filled = Math.round(fraction * BAR_WIDTH);
  return `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}]`;
}

function percent(fraction: number): string {
  return `${Math.round(clamp(fraction) * 100)}%`;
}

function clamp(value: number): number {
  return Math.min(1, Math.max(0, value));
}

function oneLine(text: string): string {
  const flat = text.replace(/\s*\n\s*/g, " ").trim();
  return flat.length > MAX_LINE_CHARS ? `${flat.slice(0, MAX_LINE_CHARS)}…` : flat;
}

function fit(text: string, columns: number): string {
  return text.length < columns ? text : `${text.slice(0, Math.max(0, columns - 2))}…`;
}

function terminalColumns(): number {
  try {
    const { columns } = Deno.consoleSize();
    return columns > 0 ? columns : 80;
  } catch {
    return 80;
  }
}
