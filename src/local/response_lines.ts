/**
 * The JSON-lines sink of `taskrunner run --json`: the responses `serve` would publish, fed by
 * the same `ProgressResponses` and terminal response as the broker's front door.
 *
 * @module
 */

import { encodeResponse, type ResponseEcho } from "../protocol/response.ts";
import { writeLine } from "./output.ts";

/** One response as {@linkcode encodeResponse} takes it (a success's output in chunks). */
type ResponseLine = Parameters<typeof encodeResponse>[1];

/**
 * The responses `serve` would publish, as JSON lines on stdout (`--json`), each written once
 * the one before is out; without `--json`, nothing.
 */
export class ResponseLines {
  readonly #echo: ResponseEcho;
  readonly #enabled: boolean;
  #written = Promise.resolve();

  /**
   * @param echo the request fields each response repeats (id, script)
   * @param enabled whether to write at all (`--json`)
   */
  constructor(echo: ResponseEcho, enabled: boolean) {
    this.#echo = echo;
    this.#enabled = enabled;
  }

  /** Writes `update` after the ones queued before it. */
  queue(update: ResponseLine): void {
    this.#written = this.#written.then(() => this.#write(update));
  }

  /** Writes the terminal `update` after the ones queued before it, and waits until it is out. */
  async last(update: ResponseLine): Promise<void> {
    await this.#written;
    await this.#write(update);
  }

  async #write(update: ResponseLine): Promise<void> {
    if (!this.#enabled) return;
    await writeLine(new TextDecoder().decode(encodeResponse(this.#echo, update)));
  }
}
