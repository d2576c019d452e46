/** A request as the hmi-server publishes it: every field it sends, in its order. */
export interface ClientRequest {
  id: string;
  script: string;
  /** Base64 of the input bytes; null for none. */
  input: string | null;
  timeoutMinutes: number;
  routingKey: string;
  additionalProperties: Record<string, unknown> | null;
  userId: string | null;
  projectId: string | null;
  requestSHA256: string | null;
  useCache: boolean;
  /** The request type (task family), as the server sets it; the runner ignores it. */
  type: string;
}

/** What a caller says about one task; the rest takes the server's defaults. */
export interface ClientTask {
  script: string;
  /** The input bytes; null sends no input at all (the field is null). */
  input: Uint8Array | null;
  timeoutMs: number;
  routingKey: string;
  /** A random UUID by default, as the server's. */
  id?: string;
  additionalProperties?: Record<string, unknown> | null;
  userId?: string | null;
  /** True by default, as the server's `TaskRequest`. */
  useCache?: boolean;
}

/**
 * Builds a request the way the hmi-server does: its field set, with its defaults for what
 * `task` leaves out.
 *
 * @param task what to run, its input, its time limit and where responses go
 * @param requestType the task family, e.g. `gollm`
 */
export function buildClientRequest(task: ClientTask, requestType: string): ClientRequest {
  return {
    id: task.id ?? crypto.randomUUID(),
    script: task.script,
    input: task.input === null ? null : task.input.toBase64(),
    timeoutMinutes: task.timeoutMs / 60_000,
    routingKey: task.routingKey,
    additionalProperties: task.additionalProperties ?? null,
    userId: task.userId ?? null,
    projectId: null,
    requestSHA256: null,
    useCache: task.useCache ?? true,
    type: requestType,
  };
}

/** The bytes of a request as the server sends them: its JSON. */
export function encodeClientRequest(request: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(request));
}
