import { z } from "zod";
import { errorMessage } from "../util/async.ts";

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
  routingKey: z.string().nullish(),
  useCache: z.boolean().nullish(),
});

/** A validated task request with defaults applied and the input decoded. */
export interface TaskRequest {
  id: string;
  script: string;
  input: Uint8Array;
  timeoutMinutes: number;
  additionalProperties: unknown;
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
    this.routingKey = typeof routingKey === "string" ? routingKey : undefined;
  }
}

/**
 * Parses and validates a request message body.
 *
 * @param body the raw message bytes (UTF-8 JSON)
 * @throws {InvalidRequestError} when the body is not JSON, not a valid request, or its input is not base64
 */
export function parseTaskRequest(body: Uint8Array): TaskRequest {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (error) {
    // V8 quotes the start of the text in its message: that is the request body, never logged.
    const reason = errorMessage(error).replace(/, (?:\.\.\.)?".*$/s, "");
    throw new InvalidRequestError(`Request is not valid JSON: ${reason}`, { cause: error });
  }
  const fields = typeof json === "object" && json !== null && !Array.isArray(json)
    ? json as Record<string, unknown>
    : {};
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
  let input: Uint8Array;
  try {
    input = request.input ? Uint8Array.fromBase64(request.input) : new Uint8Array();
  } catch (error) {
    throw new InvalidRequestError(
      `Invalid request: input: must be base64: ${errorMessage(error)}`,
      {
        fields,
        cause: error,
      },
    );
  }
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
    input,
    timeoutMinutes: request.timeoutMinutes ?? DEFAULT_TIMEOUT_MINUTES,
    additionalProperties: request.additionalProperties ?? null,
    userId: request.userId ?? null,
    projectId: request.projectId ?? null,
    requestSHA256: request.requestSHA256 ?? null,
    routingKey: request.routingKey ?? "",
    useCache: request.useCache ?? true,
  };
}
