/**
 * Spring Boot's relaxed binding of environment variables, for the `TERARIUM_*` variables: the
 * Java runner read `terarium.taskrunner.request-type` from `TERARIUM_TASKRUNNER_REQUEST_TYPE`,
 * `TERARIUM_TASKRUNNER_REQUESTTYPE` and `TERARIUM_TASKRUNNER_REQUEST-TYPE` alike, and
 * deployments use each of them.
 *
 * @module
 */

/** One spelling of a variable found in the environment. */
export interface FoundVariable {
  /** The name as it is in the environment. */
  name: string;
  value: string;
}

/**
 * The Spring property a documented variable stands for: what follows `TERARIUM_TASKRUNNER_`
 * or `TERARIUM_` is one kebab-case name, as in the Java runner (`terarium.mq-addresses`,
 * `terarium.durable-queues`, `terarium.taskrunner.request-type`).
 *
 * @param variable a documented name such as `TERARIUM_TASKRUNNER_REQUEST_TYPE`
 */
export function springProperty(variable: string): string {
  const parts = variable.toLowerCase().split("_");
  const prefix = parts[1] === "taskrunner" && parts.length > 2 ? 2 : 1;
  return [...parts.slice(0, prefix), parts.slice(prefix).join("-")].join(".");
}

/**
 * Whether `name` is a spelling of the documented `variable` that Spring's relaxed binding
 * accepts: in any case, `.` or `_` between the property's parts, and within a part either
 * dashes, no separator at all, or `_` for each dash (Spring's legacy form).
 *
 * @example
 * ```ts
 * isSpellingOf("TERARIUM_DURABLEQUEUES", "TERARIUM_DURABLE_QUEUES"); // true
 * isSpellingOf("TERARIUM_TASKRUNNER_REQUEST-TYPE", "TERARIUM_TASKRUNNER_REQUEST_TYPE"); // true
 * ```
 */
export function isSpellingOf(name: string, variable: string): boolean {
  return spellingTest(variable)(name);
}

/**
 * Every non-empty spelling of `variable` in `env` (see {@linkcode isSpellingOf}), the
 * documented one first. An empty value (`VAR=` in a compose file) means unset.
 */
export function findSpellings(
  env: Record<string, string | undefined>,
  variable: string,
): FoundVariable[] {
  const isSpelling = spellingTest(variable);
  const found: FoundVariable[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || value === "" || !isSpelling(name)) continue;
    if (name === variable) found.unshift({ name, value });
    else found.push({ name, value });
  }
  return found;
}

/**
 * The test of {@linkcode isSpellingOf} for one variable, its property's forms made once: a
 * runner's start-up looks each setting up among every variable of its environment.
 */
function spellingTest(variable: string): (name: string) => boolean {
  const property = springProperty(variable);
  const uniformProperty = uniform(property);
  const legacyProperty = legacy(property);
  const first = uniformProperty.charCodeAt(0);
  return (name) =>
    mayStartAs(name, first) &&
    (uniform(name) === uniformProperty || legacy(name) === legacyProperty);
}

const DASH = 0x2d;

/**
 * Whether a name may have a form that starts with the character `first` (lower case): most
 * names (PATH, HOME, ...) are told apart by their first character alone, before any form is
 * made. A leading dash (dropped by the uniform form), or a character beyond ASCII (whose
 * lower case is not one bit away), is left to the full test.
 */
function mayStartAs(name: string, first: number): boolean {
  if (Number.isNaN(first)) return true;
  const code = name.charCodeAt(0);
  return code === first || code === (first ^ 0x20) || code === DASH || code > 0x7f;
}

/**
 * Whether `name` is a spelling of a broker variable (`TERARIUM_MQ_*`, such as
 * `TERARIUM_MQ-PASSWORD`), which tasks must never see.
 */
export function isBrokerVariable(name: string): boolean {
  return uniform(name).startsWith("terarium_mq");
}

// Spring's canonical form: lower case, parts split on `.` or `_`, dashes ignored.
function uniform(name: string): string {
  return name.toLowerCase().replaceAll(".", "_").replaceAll("-", "");
}

// Spring's legacy form: each dash written as `_`.
function legacy(name: string): string {
  return name.toLowerCase().replaceAll(".", "_").replaceAll("-", "_");
}
