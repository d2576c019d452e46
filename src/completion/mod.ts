export * from "./bash.ts";
export * from "./command_tree.ts";
export * from "./fish.ts";
export * from "./zsh.ts";
