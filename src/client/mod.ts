export * from "./names.ts";
export * from "./request.ts";
export * from "./response_stream.ts";
export * from "./task_client.ts";
