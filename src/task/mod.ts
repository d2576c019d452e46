export * from "./errors.ts";
export { taskDirsRemoved } from "./fifo.ts";
export * from "./contract.ts";
export * from "./run_task.ts";
export { isScriptAllowed, type PipeArgStyle } from "./script_command.ts";
export type { StopReason } from "./process_group.ts";
