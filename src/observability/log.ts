/** Log levels, least to most severe. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];
/** `text` for people at a terminal, `json` for log collectors: one object per line. */
export type LogFormat = "text" | "json";

/** Structured context of a log line: task id, script, status, duration, ... */
export type LogFields = Record<string, unknown>;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const encoder = new TextEncoder();
// Shorter "secrets" would mask ordinary words and numbers all over the log.
const MIN_SECRET_LENGTH = 4;

/** Where log lines go; stderr by default, replaceable in tests. */
export type LogSink = (line: string) => void;

function writeStderr(line: string): void {
  const bytes = encoder.encode(line);
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}

/**
 * A small structured logger: leveled, text or JSON lines, with fields bound per component
 * or per task through {@linkcode Logger.with}.
 */
export class Logger {
  readonly #level: LogLevel;
  readonly #format: LogFormat;
  readonly #fields: LogFields;
  readonly #sink: LogSink;
  readonly #secrets: readonly string[];

  constructor(
    options: {
      level?: LogLevel;
      format?: LogFormat;
      fields?: LogFields;
      sink?: LogSink;
      /** Strings replaced by `***` wherever they appear in a line. */
      secrets?: readonly string[];
    } = {},
  ) {
    this.#level = options.level ?? "info";
    this.#format = options.format ?? "text";
    this.#fields = options.fields ?? {};
    this.#sink = options.sink ?? writeStderr;
    this.#secrets = (options.secrets ?? []).filter((secret) => secret.length >= MIN_SECRET_LENGTH);
  }

  /** A logger that adds `fields` to every line. */
  with(fields: LogFields): Logger {
    return new Logger({
      level: this.#level,
      format: this.#format,
      fields: { ...this.#fields, ...fields },
      sink: this.#sink,
      secrets: this.#secrets,
    });
  }

  /**
   * A logger that masks `secrets` in every line, whatever writes them (an error message of a
   * library, a task's output): a last line of defence behind never logging them at all.
   */
  redacting(secrets: readonly string[]): Logger {
    return new Logger({
      level: this.#level,
      format: this.#format,
      fields: this.#fields,
      sink: this.#sink,
      secrets: [...this.#secrets, ...secrets],
    });
  }

  /** Whether lines of `level` are written. */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= RANK[this.#level];
  }

  debug(message: string, fields?: LogFields): void {
    this.log("debug", message, fields);
  }

  info(message: string, fields?: LogFields): void {
    this.log("info", message, fields);
  }

  warn(message: string, fields?: LogFields): void {
    this.log("warn", message, fields);
  }

  error(message: string, fields?: LogFields): void {
    this.log("error", message, fields);
  }

  /** Writes one line if `level` is enabled. */
  log(level: LogLevel, message: string, fields?: LogFields): void {
    if (!this.enabled(level)) return;
    const all = { ...this.#fields, ...fields };
    const time = new Date().toISOString();
    const msg = this.#redact(message);
    const shown = this.#redactFields(plain(all));
    this.#sink(
      this.#format === "json"
        ? `${JSON.stringify({ time, level, msg, ...shown })}\n`
        : `${time} ${level.toUpperCase().padEnd(5)} ${msg}${formatFields(shown)}\n`,
    );
  }

  #redact(text: string): string {
    for (const secret of this.#secrets) text = text.replaceAll(secret, "***");
    return text;
  }

  // Field by field, so that a JSON line stays valid JSON whatever the secret looks like.
  #redactFields(fields: LogFields): LogFields {
    if (this.#secrets.length === 0) return fields;
    const out: LogFields = {};
    for (const [key, value] of Object.entries(fields)) {
      if (typeof value === "string") {
        out[key] = this.#redact(value);
      } else if (typeof value === "object" && value !== null) {
        const text = JSON.stringify(value);
        const redacted = this.#redact(text);
        out[key] = redacted === text ? value : redacted;
      } else {
        out[key] = value;
      }
    }
    return out;
  }
}

function plain(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    out[key] = value instanceof Error ? value.message : value;
  }
  return out;
}

function formatFields(fields: LogFields): string {
  let text = "";
  for (const [key, value] of Object.entries(plain(fields))) {
    const shown = typeof value === "string" ? value : JSON.stringify(value);
    text += ` ${key}=${/[\s"=]/.test(shown) ? JSON.stringify(shown) : shown}`;
  }
  return text;
}
