/**
 * Task-side library for the Terarium taskrunner: read input, send progress and output over the
 * runner's named pipes, react to cancellation. See {@linkcode Task}.
 *
 * @module
 */
export {
  type CancelHandler,
  DEFAULT_SELF_DESTRUCT_TIMEOUT_SECONDS,
  DEFAULT_TIMEOUT_MS,
  encodePayload,
  type IoOptions,
  parseTaskArgs,
  type Payload,
  Task,
  type TaskArgs,
  TaskArgsError,
  type TaskOptions,
} from "./task.ts";
