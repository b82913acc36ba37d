import { StewardError } from '../errors.js';
import { isKind, KIND_RULES, KINDS, type Desired, type Kind } from './kinds.js';
import { parseDocuments } from './parse.js';
import { checkSchema } from './schema.js';
import { isSopsDocument } from './sops.js';

export {
  KINDS,
  type Kind,
  type Desired,
  type DesiredContainer,
  type DesiredFile,
  type DesiredService,
} from './kinds.js';
import { compareText } from '../order.js';

/** The desired state of a host at one commit: every resource, in dependency order. */
export interface Bundle {
  revision: string;
  resources: Desired[];
}

/**
 * Parses and validates every document of every file. The result has resources only when the
 * whole set is valid: one bad document rejects the bundle, with an error per problem, each
 * naming the file, the line and the JSON pointer. Pure: the files are already read.
 */
export function buildBundle(
  revision: string,
  files: Array<{ path: string; text: string }>,
): { bundle?: Bundle; errors: StewardError[] } {
  const errors: StewardError[] = [];
  const resources: Desired[] = [];
  const byId = new Map<string, Desired>();
  for (const f of files) {
    const { docs, failures } = parseDocuments(f.text, !/\.json$/i.test(f.path));
    for (const p of failures)
      errors.push(new StewardError('E_MANIFEST_PARSE', p.message, { file: f.path, line: p.line }));
    for (const doc of docs) {
      // A SOPS-encrypted YAML/JSON file among the manifests is data for a File or envFrom.
      if (isSopsDocument(doc.value)) continue;
      const r = toResource(f.path, doc, errors);
      if (!r) continue;
      const prior = byId.get(r.id);
      if (prior) {
        errors.push(
          new StewardError(
            'E_MANIFEST_DUPLICATE',
            `${r.id} is declared twice: ${prior.file}:${prior.line} and ${r.file}:${r.line}`,
            { file: r.file, line: r.line, resource: r.id, pointer: '/metadata/name' },
          ),
        );
        continue;
      }
      byId.set(r.id, r);
      resources.push(r);
    }
  }
  errors.push(...checkSemantics(resources, (id, pointer) => byId.get(id)?.at?.(pointer)));
  if (errors.length > 0) return { errors };
  return { bundle: { revision, resources: orderByDependencies(resources) }, errors };
}

/** One parsed document as a resource of a known kind that matches its schema; else its errors. */
function toResource(
  path: string,
  doc: ReturnType<typeof parseDocuments>['docs'][number],
  errors: StewardError[],
): Desired | undefined {
  const v = doc.value;
  const at = (pointer: string, key?: string) => ({
    file: path,
    line: doc.lineOf(pointer, key),
    pointer: key ? `${pointer}/${key}` : pointer || '/',
  });
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    errors.push(
      new StewardError(
        'E_MANIFEST_INVALID',
        'a document must be a mapping with apiVersion, kind, metadata and spec',
        at(''),
      ),
    );
    return undefined;
  }
  const kind = (v as { kind?: unknown }).kind;
  if (!isKind(kind)) {
    const msg =
      kind === undefined
        ? 'missing required field "kind"'
        : `unknown kind ${JSON.stringify(kind)}; expected one of ${KINDS.join(', ')}`;
    errors.push(new StewardError('E_MANIFEST_INVALID', msg, kind === undefined ? at('', 'kind') : at('/kind')));
    return undefined;
  }
  const problems = checkSchema(kind.toLowerCase() as Lowercase<Kind>, v);
  if (problems.length > 0) {
    for (const p of problems) errors.push(new StewardError('E_MANIFEST_INVALID', p.message, at(p.pointer, p.key)));
    return undefined;
  }
  const valid = v as { kind: Kind; metadata: { name: string }; spec: never };
  const r = {
    id: `${valid.kind}/${valid.metadata.name}`,
    kind: valid.kind,
    name: valid.metadata.name,
    spec: valid.spec,
    file: path,
    line: doc.line,
  } as Desired;
  Object.defineProperty(r, 'at', { value: (pointer: string) => doc.lineOf(pointer), enumerable: false });
  return r;
}

/** Cross-document rules the schemas cannot express. */
function checkSemantics(
  resources: Desired[],
  lineAt: (id: string, pointer: string) => number | undefined,
): StewardError[] {
  const errors: StewardError[] = [];
  const ids = new Set(resources.map((r) => r.id));
  const names = new Map<string, Desired>();
  for (const r of resources) {
    errors.push(...checkReferences(r, ids, lineAt));
    // Two File resources for one path, or two Services for one unit, would fight each other.
    const exclusive = KIND_RULES[r.kind].exclusive as ((spec: Desired['spec']) => string) | undefined;
    if (!exclusive) continue;
    const what = exclusive(r.spec);
    const key = `${r.kind}:${what}`;
    const other = names.get(key);
    if (other)
      errors.push(
        new StewardError(
          'E_MANIFEST_DUPLICATE',
          `${r.id} and ${other.id} (${other.file}:${other.line}) manage the same ${what}`,
          { file: r.file, line: r.line, resource: r.id },
        ),
      );
    else names.set(key, r);
  }
  const cycle = findCycle(resources);
  if (cycle) {
    const first = resources.find((r) => r.id === cycle[0])!;
    // A long cycle is shown by its ends: the message goes into the status document.
    const path =
      cycle.length > 12 ? [...cycle.slice(0, 8), `… ${cycle.length - 11} more …`, ...cycle.slice(-3)] : cycle;
    errors.push(
      new StewardError('E_MANIFEST_DEPENDENCY', `dependency cycle: ${path.join(' -> ')}`, {
        file: first.file,
        line: first.line,
        resource: first.id,
      }),
    );
  }
  return errors;
}

/** dependsOn and restartOn name other resources of the bundle; restartOn only on a kind that restarts. */
function checkReferences(
  r: Desired,
  ids: ReadonlySet<string>,
  lineAt: (id: string, pointer: string) => number | undefined,
): StewardError[] {
  const errors: StewardError[] = [];
  for (const field of ['dependsOn', 'restartOn'] as const) {
    (r.spec[field] ?? []).forEach((ref, i) => {
      const pointer = `/spec/${field}/${i}`;
      const where = { file: r.file, line: lineAt(r.id, pointer) ?? r.line, resource: r.id, pointer };
      const problem =
        field === 'restartOn' && !KIND_RULES[r.kind].restartable
          ? `a ${r.kind} cannot be restarted; use dependsOn to order it after ${ref}`
          : ref === r.id
            ? `${r.id} cannot name itself in ${field}`
            : !ids.has(ref)
              ? `${field} names ${ref}, which is not in this host's bundle`
              : undefined;
      if (problem) errors.push(new StewardError('E_MANIFEST_DEPENDENCY', problem, where));
    });
  }
  return errors;
}

/** Edges: a resource comes after what it dependsOn and after what it restartsOn. */
function after(r: Desired): string[] {
  return [...new Set([...(r.spec.dependsOn ?? []), ...(r.spec.restartOn ?? [])])];
}

/**
 * The first dependency cycle, as a path that ends where it starts. Iterative (an explicit stack):
 * a 50,000-link dependsOn chain is input, and must not overflow the call stack.
 */
function findCycle(resources: Desired[]): string[] | undefined {
  const byId = new Map(resources.map((r) => [r.id, r]));
  const state = new Map<string, 'visiting' | 'done'>();
  for (const r of resources) {
    if (state.has(r.id)) continue;
    const path: string[] = [r.id];
    const next: Array<string[]> = [after(r).filter((d) => byId.has(d))];
    state.set(r.id, 'visiting');
    while (path.length > 0) {
      const pending = next[next.length - 1]!;
      const dep = pending.shift();
      if (dep === undefined) {
        state.set(path.pop()!, 'done');
        next.pop();
        continue;
      }
      if (state.get(dep) === 'done') continue;
      if (state.get(dep) === 'visiting') return [...path.slice(path.indexOf(dep)), dep];
      state.set(dep, 'visiting');
      path.push(dep);
      next.push(after(byId.get(dep)!).filter((d) => byId.has(d)));
    }
  }
  return undefined;
}

/** A stable topological order: dependencies first, otherwise files, Files, Services, Containers. */
function orderByDependencies(resources: Desired[]): Desired[] {
  const rank = (r: Desired) => KIND_RULES[r.kind].order;
  const sorted = [...resources].sort((a, b) => rank(a) - rank(b) || compareText(a.id, b.id));
  const byId = new Map(sorted.map((r) => [r.id, r]));
  const out: Desired[] = [];
  const placed = new Set<string>();
  // Depth-first, dependencies before dependents, with an explicit stack (no recursion on input).
  for (const start of sorted) {
    if (placed.has(start.id)) continue;
    placed.add(start.id);
    const stack: Array<{ r: Desired; deps: string[] }> = [{ r: start, deps: after(start) }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const dep = top.deps.shift();
      if (dep === undefined) {
        out.push(top.r);
        stack.pop();
        continue;
      }
      const d = byId.get(dep);
      if (d && !placed.has(d.id)) {
        placed.add(d.id);
        stack.push({ r: d, deps: after(d) });
      }
    }
  }
  return out;
}
