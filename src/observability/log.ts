import { writeStderr } from "../util/stderr.ts";

/** Log levels, least to most severe. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];
/** `text` for people at a terminal, `json` for log collectors: one object per line. */
export type LogFormat = "text" | "json";

/** Structured context of a log line: task id, script, status, duration, ... */
export type LogFields = Record<string, unknown>;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
// Shorter "secrets" would mask ordinary words and numbers all over the log.
const MIN_SECRET_LENGTH = 4;
/** Longest message written whole; the rest is cut and its length said. */
export const MAX_LOGGED_MESSAGE_CHARS = 8 * 1024;
/** Longest field value written whole (a script name, an error): the rest is cut. */
export const MAX_LOGGED_FIELD_CHARS = 1024;
// Characters that would break a line or play tricks on a terminal: C0 and C1 controls, DEL,
// and the Unicode line and paragraph separators.
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
// deno-lint-ignore no-control-regex -- as above
const HAS_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** Where log lines go; stderr by default, replaceable in tests. */
export type LogSink = (line: string) => void;

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
    // Redacted before it is cut: a cut must never leave part of a secret unmatched.
    const msg = cut(this.#redact(message), MAX_LOGGED_MESSAGE_CHARS);
    const shown = capFields(this.#redactFields(plain(all)));
    this.#sink(
      this.#format === "json"
        ? `${escapeJsonControls(JSON.stringify({ time, level, msg, ...shown }))}\n`
        : `${time} ${level.toUpperCase().padEnd(5)} ${escapeControls(msg)}${formatFields(shown)}\n`,
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
    const quoted = /[\s"=]/.test(shown) || HAS_CONTROL.test(shown);
    text += ` ${escapeControls(key)}=${quoted ? escapeJsonControls(JSON.stringify(shown)) : shown}`;
  }
  return text;
}

/** Cuts text longer than `max` characters, saying how much was left out. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  // Never half a surrogate pair.
  const end = /[\ud800-\udbff]/.test(text[max - 1]!) ? max - 1 : max;
  return `${text.slice(0, end)}… (${text.length - end} more characters)`;
}

// A task's output and a request's script name end up in fields: each is bounded.
function capFields(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    if (typeof value === "string") {
      out[key] = cut(value, MAX_LOGGED_FIELD_CHARS);
    } else if (typeof value === "object" && value !== null) {
      const text = JSON.stringify(value);
      out[key] = text.length > MAX_LOGGED_FIELD_CHARS ? cut(text, MAX_LOGGED_FIELD_CHARS) : value;
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** Text with every control character written as an escape (`\n`, `\u0000`): one line. */
function escapeControls(text: string): string {
  return text.replace(
    CONTROL,
    (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

// JSON.stringify escapes C0 controls but leaves DEL, C1 controls and U+2028/9 as they are.
function escapeJsonControls(json: string): string {
  return json.replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
