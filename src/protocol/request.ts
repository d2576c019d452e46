import { z } from "zod";
import { errorMessage } from "../util/async.ts";
import { concatBytes } from "../util/bytes.ts";
import { findTopLevelString, findTopLevelValue } from "./json_scan.ts";
import { RawJson } from "./raw_json.ts";

/** Bodies from this size have their input decoded straight from the bytes. */
const LARGE_BODY_BYTES = 1024 * 1024;
const NULL_BYTES = new TextEncoder().encode("null");

/** Default of `timeoutMinutes`, as in the Java taskrunner. */
export const DEFAULT_TIMEOUT_MINUTES = 5;

const uuid = z.string().regex(
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  "must be a UUID",
);

/** The request schema: what the hmi-server publishes on the request queue. */
export const TaskRequestSchema = z.object({
  id: uuid,
  script: z.string().min(1, "must not be empty"),
  // Jackson writes `byte[]` as base64; decoded (and so validated) after the schema.
  input: z.string().nullish(),
  timeoutMinutes: z.number().positive().finite().nullish(),
  additionalProperties: z.unknown().optional(),
  userId: z.string().nullish(),
  projectId: uuid.nullish(),
  requestSHA256: z.string().nullish(),
  routingKey: z.string().refine(isRoutingKey, "must be at most 255 bytes").nullish(),
  useCache: z.boolean().nullish(),
});

/** Whether a string can be an AMQP routing key (a short string: at most 255 UTF-8 bytes). */
export function isRoutingKey(value: string): boolean {
  return value.length <= 255 && new TextEncoder().encode(value).length <= 255;
}

/** A validated task request with defaults applied and the input decoded. */
export interface TaskRequest {
  id: string;
  script: string;
  input: Uint8Array;
  timeoutMinutes: number;
  /** Passed back byte for byte in every response; null when absent or null. */
  additionalProperties: RawJson | null;
  userId: string | null;
  projectId: string | null;
  requestSHA256: string | null;
  routingKey: string;
  useCache: boolean;
}

/** A message on the request queue that is not a valid request. */
export class InvalidRequestError extends Error {
  /** The request id, when the message carried a usable one. */
  readonly id: string | undefined;
  /** The routing key for responses, when the message carried one. */
  readonly routingKey: string | undefined;
  /** Whatever usable fields the message had, to echo them in a `FAILED` response. */
  readonly fields: Record<string, unknown>;

  constructor(
    message: string,
    options: { fields?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "InvalidRequestError";
    this.fields = options.fields ?? {};
    const id = this.fields.id;
    const routingKey = this.fields.routingKey;
    this.id = typeof id === "string" && uuid.safeParse(id).success ? id : undefined;
    this.routingKey = typeof routingKey === "string" && isRoutingKey(routingKey)
      ? routingKey
      : undefined;
  }
}

/**
 * Parses and validates a request message body.
 *
 * @param body the raw message bytes (UTF-8 JSON)
 * @throws {InvalidRequestError} when the body is not JSON, not a valid request, or its input is not base64
 */
export function parseTaskRequest(body: Uint8Array): TaskRequest {
  // A large body is nearly all base64 input: take the input out of the bytes, parse the rest,
  // and decode the input on its own, without a 90 MB JSON string in between.
  const span = body.length >= LARGE_BODY_BYTES ? findTopLevelString(body, "input") : undefined;
  if (span) {
    const rest = concatBytes([
      body.subarray(0, span.start - 1),
      NULL_BYTES,
      body.subarray(span.end + 1),
    ]);
    const { base64Input, ...request } = parseRequestJson(rest);
    // A second "input" key (JSON.parse takes the last one) is left to the ordinary path too.
    if (base64Input === null) {
      try {
        return { ...request, input: decodeBase64(body.subarray(span.start, span.end)) };
      } catch {
        // Escapes, or not base64 at all: the ordinary path decodes or reports it.
      }
    }
  }
  const { base64Input, ...request } = parseRequestJson(body);
  return { ...request, input: decodeInput(base64Input, request) };
}

function parseRequestJson(
  body: Uint8Array,
): Omit<TaskRequest, "input"> & { base64Input: string | null } {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (error) {
    // V8 quotes the start of the text in its message: that is the request body, never logged.
    const reason = errorMessage(error).replace(/, (?:\.\.\.)?".*$/s, "");
    throw new InvalidRequestError(`Request is not valid JSON: ${reason}`, { cause: error });
  }
  const object = typeof json === "object" && json !== null && !Array.isArray(json)
    ? json as Record<string, unknown>
    : undefined;
  const additionalProperties = object ? rawAdditionalProperties(body, object) : null;
  const fields = object ? { ...object, additionalProperties } : {};
  const parsed = TaskRequestSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) =>
      `${issue.path.length > 0 ? issue.path.join(".") : "request"}: ${issue.message}`
    );
    throw new InvalidRequestError(`Invalid request: ${issues.join("; ")}`, {
      fields,
      cause: parsed.error,
    });
  }
  const request = parsed.data;
  try {
    JSON.stringify(request.additionalProperties ?? null);
  } catch (error) {
    // Nested deeper than the serialiser's stack: it could not be passed back in responses.
    throw new InvalidRequestError(
      `Invalid request: additionalProperties: cannot be passed back: ${errorMessage(error)}`,
      {
        fields: { id: request.id, routingKey: request.routingKey, script: request.script },
        cause: error,
      },
    );
  }
  return {
    id: request.id,
    script: request.script,
    base64Input: request.input ?? null,
    timeoutMinutes: request.timeoutMinutes ?? DEFAULT_TIMEOUT_MINUTES,
    additionalProperties,
    userId: request.userId ?? null,
    projectId: request.projectId ?? null,
    requestSHA256: request.requestSHA256 ?? null,
    routingKey: request.routingKey ?? "",
    useCache: request.useCache ?? true,
  };
}

// The raw bytes of `additionalProperties` (a copy: the body is let go once parsed). When they
// cannot be found (a key written with escapes), the parsed value is written back instead.
function rawAdditionalProperties(
  body: Uint8Array,
  json: Record<string, unknown>,
): RawJson | null {
  const value = json.additionalProperties;
  if (value === undefined || value === null) return null;
  const span = findTopLevelValue(body, "additionalProperties");
  if (span) return new RawJson(body.slice(span.start, span.end));
  try {
    return new RawJson(new TextEncoder().encode(JSON.stringify(value)));
  } catch {
    return null; // too deep to write back: the check after the schema rejects the request
  }
}

function decodeInput(base64: string | null, request: Omit<TaskRequest, "input">): Uint8Array {
  if (!base64) return new Uint8Array();
  try {
    return Uint8Array.fromBase64(base64);
  } catch (error) {
    throw new InvalidRequestError(
      `Invalid request: input: must be base64: ${errorMessage(error)}`,
      {
        fields: { ...request },
        cause: error,
      },
    );
  }
}

// Decoded in slices whose strings stay small enough for V8's young generation, where a
// scavenge frees them: larger ones go to the large-object space and wait for a full GC.
const BASE64_CHUNK_CHARS = 64 * 1024;

/** Decodes base64 held as ASCII bytes; throws on anything else (padding inside, stray bytes). */
function decodeBase64(base64: Uint8Array): Uint8Array {
  if (base64.length % 4 !== 0) throw new SyntaxError("base64 length is not a multiple of 4");
  const padding = (base64.at(-1) === 0x3d ? 1 : 0) + (base64.at(-2) === 0x3d ? 1 : 0);
  const out = new Uint8Array(base64.length / 4 * 3 - padding);
  const decoder = new TextDecoder();
  let written = 0;
  for (let offset = 0; offset < base64.length; offset += BASE64_CHUNK_CHARS) {
    const text = decoder.decode(base64.subarray(offset, offset + BASE64_CHUNK_CHARS));
    const result = out.subarray(written).setFromBase64(text);
    if (result.read !== text.length) throw new SyntaxError("base64 did not decode to the end");
    written += result.written;
  }
  if (written !== out.length) throw new SyntaxError("base64 decoded to fewer bytes than expected");
  return out;
}
