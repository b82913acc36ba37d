import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import type { Kind } from './kinds.js';
import { validators } from './validators.generated.js';

/** The schema files, by the name used in `schemas/<name>.schema.json`. */
export type SchemaName = 'agent-config' | 'host-status' | Lowercase<Kind>;

export interface SchemaProblem {
  /** JSON pointer of the bad value (for an unknown or missing field: its parent object). */
  pointer: string;
  /** The field name an unknown/missing-field problem is about. */
  key?: string;
  message: string;
}

/**
 * The validators are compiled ahead of time (schemas/gen-validators.mjs, with strict mode, all
 * errors, verbose errors and the formats of ajv-formats): no process compiles a schema.
 */
function validator(name: SchemaName): ValidateFunction {
  return (validators as unknown as Record<SchemaName, ValidateFunction>)[name];
}

/** Validates `value` against a schema; returns readable problems, empty when valid. Pure. */
export function checkSchema(name: SchemaName, value: unknown): SchemaProblem[] {
  const fn = validator(name);
  if (fn(value)) return [];
  return explain(fn.errors ?? []);
}

/** Type guard form of checkSchema, for data that must be exactly the schema's type. */
export function matchesSchema<T>(name: SchemaName, value: unknown): value is T {
  return validator(name)(value) === true;
}

/** Turns ajv's errors into one message per bad value, dropping ajv's structural noise. */
function explain(errors: ErrorObject[]): SchemaProblem[] {
  const out: SchemaProblem[] = [];
  const seen = new Set<string>();
  // A failing oneOf/anyOf/if reports its branches' errors too; keep only the summary for those.
  const combinators = errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf' || e.keyword === 'not');
  const insideCombinator = (e: ErrorObject): boolean =>
    combinators.some(
      (c) =>
        c !== e && e.schemaPath.startsWith(c.schemaPath.replace(/\/(oneOf|anyOf|not)$/, '') + '/' + c.keyword + '/'),
    );
  for (const e of errors) {
    if (e.keyword === 'if' || insideCombinator(e)) continue;
    if (e.keyword !== 'propertyNames' && e.schemaPath.includes('/propertyNames/')) continue;
    const problem = describe(e);
    const id = `${problem.pointer}|${problem.key ?? ''}|${problem.message}`;
    if (!seen.has(id)) {
      seen.add(id);
      out.push(problem);
    }
  }
  return out;
}

function describe(e: ErrorObject): SchemaProblem {
  const pointer = e.instancePath;
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return { pointer, key: String(p.additionalProperty), message: `unknown field "${String(p.additionalProperty)}"` };
    case 'required':
      return {
        pointer,
        key: String(p.missingProperty),
        message: `missing required field "${String(p.missingProperty)}"`,
      };
    case 'enum':
      return {
        pointer,
        message: `must be one of: ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`,
      };
    case 'const':
      return { pointer, message: `must be ${JSON.stringify(p.allowedValue)}` };
    case 'type':
      return { pointer, message: `must be ${article(String(p.type))}` };
    case 'pattern': {
      const description = (e.parentSchema as { description?: string } | undefined)?.description;
      return {
        pointer,
        message: `does not match the expected form${description ? ` (${description})` : ` ${String(p.pattern)}`}`,
      };
    }
    case 'propertyNames': {
      const description =
        (e.schema as { description?: string } | undefined)?.description ??
        (e.parentSchema as { description?: string } | undefined)?.description;
      return {
        pointer,
        key: String(p.propertyName),
        message: `key "${String(p.propertyName)}" is not allowed${description ? ` (${description})` : ''}`,
      };
    }
    case 'minProperties':
      return { pointer, message: `must have at least ${String(p.limit)} field${p.limit === 1 ? '' : 's'}` };
    case 'oneOf':
    case 'anyOf':
      return { pointer, message: combinatorMessage(e) };
    case 'not':
      return { pointer, message: notMessage(e) };
    default:
      return { pointer, message: e.message ?? e.keyword };
  }
}

function article(type: string): string {
  if (type === 'object') return 'a mapping (object)';
  if (type === 'array') return 'a list (array)';
  if (type === 'integer') return 'an integer';
  return `a ${type}`;
}

function combinatorMessage(e: ErrorObject): string {
  const branches = (e.schema as Array<{ required?: string[]; type?: string }>) ?? [];
  const required = branches.map((b) => b.required?.[0]).filter((x): x is string => Boolean(x));
  const passing = (e.params as { passingSchemas?: number[] | null }).passingSchemas;
  if (required.length === branches.length && required.length > 0) {
    const names = required.map((r) => `"${r}"`);
    return Array.isArray(passing)
      ? `cannot have both ${passing.map((i) => names[i]).join(' and ')}; keep exactly one`
      : `needs exactly one of ${names.join(' or ')}`;
  }
  const types = branches.map((b) => b.type).filter(Boolean);
  if (types.length > 0) return `must be one of these types: ${types.join(', ')}`;
  return 'does not match any allowed form';
}

function notMessage(e: ErrorObject): string {
  const schema = e.schema as {
    required?: string[];
    anyOf?: Array<{ required?: string[] }>;
    pattern?: string;
    description?: string;
  };
  if (schema.description) return schema.description;
  if (schema.required) return `cannot have both ${schema.required.map((r) => `"${r}"`).join(' and ')}`;
  if (schema.anyOf) return `cannot have ${schema.anyOf.map((b) => `"${b.required?.[0] ?? '?'}"`).join(' or ')} here`;
  if (schema.pattern) return `must not match ${schema.pattern}`;
  return 'is not allowed here';
}
