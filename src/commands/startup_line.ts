import type { SettingGroup, SettingSpec } from "../config/settings.ts";

/** What a secret setting that is set shows in the start-up line. */
export const REDACTED = "[redacted]";

/**
 * The effective settings for the start-up line, one field per setting named by its flag
 * (`amqp-url`, `concurrency`): a secret shows as {@linkcode REDACTED} when set, a value with
 * credentials (a broker URL) through its setting's `redact`, an unset one not at all.
 *
 * Flat rather than nested: the logger cuts each field at 1 KiB.
 *
 * @param values resolved settings by group
 * @param groups the settings' specs by the same group names
 */
export function effectiveSettings<N extends string>(
  values: { readonly [name in N]: object },
  groups: { readonly [name in N]: SettingGroup },
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(groups) as N[]) {
    const group = groups[name];
    const resolved = values[name] as Record<string, unknown>;
    for (const [key, spec] of Object.entries(group) as [string, SettingSpec][]) {
      const value = resolved[key];
      if (value === undefined) continue;
      out[spec.flag.split(" ")[0]!.replace(/^--/, "")] = shown(value, spec);
    }
  }
  return out;
}

function shown(value: unknown, spec: SettingSpec): unknown {
  if (spec.secret) return REDACTED;
  const redact = spec.redact;
  if (!redact) return value;
  if (typeof value === "string") return redact(value);
  // A parsed value (a list of addresses): redacted as the text it is made of.
  return redact(typeof value === "object" ? JSON.stringify(value) : String(value));
}
