/** The `script` label value of every script folded together: outside the allow-list, or over the cap. */
export const OTHER_SCRIPT = "other";

/** Distinct `script` label values at most, `other` included: each adds series to several metrics. */
export const MAX_SCRIPT_LABELS = 50;

/**
 * Bounds the `script` label of the task metrics: a request names any script it likes, and each
 * value would be a new series forever. A script outside the allow-list (or any script when the
 * allow-list says nothing, e.g. an invalid request) is `other`; so is every new script once
 * {@linkcode MAX_SCRIPT_LABELS} values are in use.
 */
export class ScriptLabels {
  readonly #allowed: (script: string) => boolean;
  readonly #max: number;
  readonly #seen = new Set<string>([OTHER_SCRIPT]);

  /**
   * @param allowed whether a script may run here (the allow-list; without one, any)
   * @param options `max` distinct values, `other` included
   */
  constructor(allowed: (script: string) => boolean, options: { max?: number } = {}) {
    this.#allowed = allowed;
    this.#max = options.max ?? MAX_SCRIPT_LABELS;
  }

  /** The label value of `script`. */
  of(script: string | undefined): string {
    if (script === undefined || script === "" || !this.#allowed(script)) return OTHER_SCRIPT;
    if (this.#seen.has(script)) return script;
    if (this.#seen.size >= this.#max) return OTHER_SCRIPT;
    this.#seen.add(script);
    return script;
  }
}
