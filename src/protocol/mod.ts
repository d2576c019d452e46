export * from "./status.ts";
export * from "./request.ts";
export * from "./response.ts";
export * from "./raw_json.ts";
export * from "./terminal_response.ts";
