import { concatBytes } from "../util/bytes.ts";
import { RawJson } from "./raw_json.ts";
import type { TaskStatus } from "./status.ts";

/**
 * The response published to the response exchange; every field is present, absent values are
 * `null` (but `stdout` and `stderr`, which are `""` until the task has written something).
 */
export interface TaskResponse {
  id: string | null;
  script: string | null;
  status: TaskStatus;
  /** Base64 of the output bytes (progress message, result or error text). */
  output: string | null;
  additionalProperties: unknown;
  projectId: string | null;
  userId: string | null;
  stdout: string | null;
  stderr: string | null;
  requestSHA256: string | null;
  routingKey: string | null;
  useCache: boolean;
}

/** The request fields a response echoes back untouched. */
export interface ResponseEcho {
  id?: unknown;
  script?: unknown;
  additionalProperties?: unknown;
  projectId?: unknown;
  userId?: unknown;
  requestSHA256?: unknown;
  routingKey?: unknown;
  useCache?: unknown;
}

/** What changes from one response to the next of the same request. */
export interface ResponseUpdate {
  status: TaskStatus;
  output?: Uint8Array | string | null;
  stdout?: string | null;
  stderr?: string | null;
}

/**
 * Builds a response for a request (or for whatever usable fields an invalid message had).
 *
 * @param echo the request fields to pass back
 * @param update status, output and the captured stdout/stderr so far
 */
export function buildTaskResponse(echo: ResponseEcho, update: ResponseUpdate): TaskResponse {
  return {
    id: stringOrNull(echo.id),
    script: stringOrNull(echo.script),
    status: update.status,
    output: encodeOutput(update.output),
    additionalProperties: echo.additionalProperties ?? null,
    projectId: stringOrNull(echo.projectId),
    userId: stringOrNull(echo.userId),
    // The Java runner sends "" until the task has written something, never null.
    stdout: update.stdout ?? "",
    stderr: update.stderr ?? "",
    requestSHA256: stringOrNull(echo.requestSHA256),
    routingKey: stringOrNull(echo.routingKey),
    useCache: typeof echo.useCache === "boolean" ? echo.useCache : true,
  };
}

const encoder = new TextEncoder();
const EMPTY_OUTPUT = '"output":""';
const NULL_PROPERTIES = '"additionalProperties":null';
// Above this, the base64 output is written into the JSON bytes rather than copied through it.
const SPLICE_OUTPUT_BYTES = 48 * 1024;

/** Serialises a response to the UTF-8 JSON bytes that go on the wire. */
export function encodeTaskResponse(response: TaskResponse): Uint8Array {
  return encoder.encode(JSON.stringify(response));
}

/**
 * Builds and serialises a response in one step, for the runner: the JSON of
 * `buildTaskResponse(echo, update)`, but `additionalProperties` given as {@linkcode RawJson} is
 * written as its exact bytes, and a large output (bytes, or the chunks a task wrote) is
 * base64-encoded piece by piece straight into the JSON bytes. For a 64 MiB result that spares
 * a joined copy, an 85 MiB base64 string and an 85 MiB JSON string.
 *
 * @param echo the request fields to pass back
 * @param update status, output (text, bytes or chunks of bytes) and stdout/stderr so far
 */
export function encodeResponse(echo: ResponseEcho, update: EncodableUpdate): Uint8Array {
  const { output, ...rest } = update;
  const raw = echo.additionalProperties instanceof RawJson ? echo.additionalProperties : undefined;
  const chunks = outputChunks(output);
  const size = chunks?.reduce((total, chunk) => total + chunk.length, 0) ?? 0;
  const spliced = chunks !== undefined && size >= SPLICE_OUTPUT_BYTES;
  const joined = spliced ? "" : joinOutput(output, chunks, size);
  if (!spliced && !raw) {
    return encodeTaskResponse(buildTaskResponse(echo, { ...rest, output: joined }));
  }
  const json = JSON.stringify(
    buildTaskResponse(raw ? { ...echo, additionalProperties: null } : echo, {
      ...rest,
      output: joined,
    }),
  );
  // id, script and status come first: a quote in them is escaped, so neither pattern can
  // match inside them; output (base64 or null) and additionalProperties come next, in order.
  const outputAt = spliced ? json.indexOf(EMPTY_OUTPUT) + EMPTY_OUTPUT.length - 1 : 0;
  const propertiesAt = raw ? json.indexOf(NULL_PROPERTIES) + NULL_PROPERTIES.length - 4 : 0;
  const cuts = [outputAt, propertiesAt].filter((at) => at > 0);
  const texts = [json.slice(0, cuts[0]), ...cuts.map((at, k) => json.slice(at, cuts[k + 1]))]
    .map((text) => encoder.encode(text));
  if (raw) texts[texts.length - 1] = texts.at(-1)!.subarray(4); // the "null" it replaces
  const base64Size = spliced ? Math.ceil(size / 3) * 4 : 0;
  const bytes = new Uint8Array(
    texts.reduce((total, text) => total + text.length, 0) + base64Size + (raw?.bytes.length ?? 0),
  );
  let offset = 0;
  texts.forEach((text, k) => {
    bytes.set(text, offset);
    offset += text.length;
    if (k === texts.length - 1) return;
    if (spliced && k === 0) {
      writeBase64(chunks, bytes.subarray(offset, offset + base64Size));
      offset += base64Size;
    } else {
      bytes.set(raw!.bytes, offset);
      offset += raw!.bytes.length;
    }
  });
  return bytes;
}

/** A response's update as the runner gives it: output as text, bytes or the chunks a task wrote. */
export type EncodableUpdate = Omit<ResponseUpdate, "output"> & {
  output?: Uint8Array | readonly Uint8Array[] | string | null;
};

/** The bytes of a response around what changes from one response of a request to the next. */
interface ResponseFrame {
  /** `{"id":…,"script":…,"status":` */
  head: Uint8Array;
  /** `,"additionalProperties":…,"projectId":…,"userId":…,"stdout":` */
  middle: Uint8Array;
  /** `,"requestSHA256":…,"routingKey":…,"useCache":…}` */
  tail: Uint8Array;
}

/**
 * Encodes the responses of one request as {@linkcode encodeResponse} does, byte for byte, but
 * the request's fields, the same in each response, are written once, on the first: each
 * progress message of a task (a thousand running tasks send a thousand a second) then writes
 * only its status, output and stdout/stderr, with no copy of the request's fields to build and
 * serialise again. A large output still takes `encodeResponse`'s spliced route.
 */
export class ResponseEncoder {
  /** The request fields the responses pass back. */
  readonly echo: ResponseEcho;
  /** Null where the fields cannot be written apart (a value JSON.stringify leaves out). */
  #frame: ResponseFrame | null | undefined;

  /** @param echo the request fields to pass back (not changed afterwards) */
  constructor(echo: ResponseEcho) {
    this.echo = echo;
  }

  /** The response's UTF-8 JSON bytes. */
  encode(update: EncodableUpdate): Uint8Array {
    const output = update.output;
    const chunks = outputChunks(output);
    const size = chunks?.reduce((total, chunk) => total + chunk.length, 0) ?? 0;
    this.#frame ??= frameOf(this.echo);
    if (size >= SPLICE_OUTPUT_BYTES || this.#frame === null) {
      return encodeResponse(this.echo, update);
    }
    const base64 = encodeOutput(joinOutput(output, chunks, size));
    // Status and base64 are ASCII: their JSON is as many bytes as characters.
    const status = `${JSON.stringify(update.status)},"output":${
      base64 === null ? "null" : `"${base64}"`
    }`;
    const logs = encoder.encode(
      `${JSON.stringify(update.stdout ?? "")},"stderr":${JSON.stringify(update.stderr ?? "")}`,
    );
    const { head, middle, tail } = this.#frame;
    const bytes = new Uint8Array(
      head.length + status.length + middle.length + logs.length + tail.length,
    );
    bytes.set(head);
    let offset = head.length;
    offset += encoder.encodeInto(status, bytes.subarray(offset)).written;
    bytes.set(middle, offset);
    offset += middle.length;
    bytes.set(logs, offset);
    bytes.set(tail, offset + logs.length);
    return bytes;
  }
}

// The request's part of its responses, cut out of one response's JSON at the keys that follow
// each part (a key's quotes inside a value are escaped, so each is found where it is a key).
function frameOf(echo: ResponseEcho): ResponseFrame | null {
  const raw = echo.additionalProperties instanceof RawJson ? echo.additionalProperties : undefined;
  const response = buildTaskResponse(raw ? { ...echo, additionalProperties: null } : echo, {
    status: "RUNNING",
    output: null,
  });
  const properties = raw ? "null" : JSON.stringify(response.additionalProperties);
  if (properties === undefined) return null;
  const json = JSON.stringify(response);
  const statusAt = json.indexOf('"status":') + '"status":'.length;
  const middleAt = json.indexOf(',"additionalProperties":');
  const stdoutAt = json.indexOf(',"stdout":') + ',"stdout":'.length;
  const tailAt = json.indexOf(',"requestSHA256":');
  const middle = json.slice(middleAt, stdoutAt);
  return {
    head: encoder.encode(json.slice(0, statusAt)),
    // Raw properties: their exact bytes where the JSON has the null put in their place.
    middle: raw
      ? concatBytes([
        encoder.encode(',"additionalProperties":'),
        raw.bytes,
        encoder.encode(middle.slice(`,"additionalProperties":null`.length)),
      ])
      : encoder.encode(middle),
    tail: encoder.encode(json.slice(tailAt)),
  };
}

// The output as the chunks of bytes it is made of; undefined for text or none.
function outputChunks(output: EncodableUpdate["output"]): readonly Uint8Array[] | undefined {
  if (output instanceof Uint8Array) return [output];
  return Array.isArray(output) ? output : undefined;
}

// The output as one value for buildTaskResponse: chunks joined, text or null as given.
function joinOutput(
  output: Uint8Array | readonly Uint8Array[] | string | null | undefined,
  chunks: readonly Uint8Array[] | undefined,
  size: number,
): Uint8Array | string | null {
  if (!chunks) return (output as string | null | undefined) ?? null;
  return chunks.length === 1 ? chunks[0]! : concatBytes(chunks, size);
}

// Encoded in slices whose strings stay small enough for V8's young generation (a scavenge frees
// them), where a whole chunk's would wait in the large-object space for a full collection.
const BASE64_SLICE_BYTES = 48 * 1024;

// Base64 of the chunks joined, written into `target`: three bytes at a time make four
// characters, so a chunk's last one or two bytes are completed from the next chunk.
function writeBase64(chunks: readonly Uint8Array[], target: Uint8Array): void {
  let offset = 0;
  const put = (bytes: Uint8Array) => {
    offset += encoder.encodeInto(bytes.toBase64(), target.subarray(offset)).written;
  };
  const carry = new Uint8Array(3);
  let carried = 0;
  for (const chunk of chunks) {
    let start = 0;
    if (carried > 0) {
      start = Math.min(3 - carried, chunk.length);
      carry.set(chunk.subarray(0, start), carried);
      carried += start;
      if (carried < 3) continue;
      put(carry);
      carried = 0;
    }
    const whole = chunk.length - ((chunk.length - start) % 3);
    for (let at = start; at < whole; at += BASE64_SLICE_BYTES) {
      put(chunk.subarray(at, Math.min(whole, at + BASE64_SLICE_BYTES)));
    }
    carry.set(chunk.subarray(whole));
    carried = chunk.length - whole;
  }
  if (carried > 0) put(carry.subarray(0, carried));
}

function encodeOutput(output: Uint8Array | string | null | undefined): string | null {
  if (output === undefined || output === null) return null;
  const bytes = typeof output === "string" ? new TextEncoder().encode(output) : output;
  return bytes.toBase64();
}

function stringOrNull(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}
