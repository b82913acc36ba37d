import {
  LineCounter,
  parseAllDocuments,
  isCollection,
  isMap,
  isSeq,
  isScalar,
  isPair,
  visit,
  type Document,
  type Node,
} from 'yaml';

/** One parsed document with what is needed to point at a line inside it. */
export interface SourceDoc {
  /** The plain value (objects, arrays, strings, numbers, booleans, null). */
  value: unknown;
  /** 1-based index of the document inside its file. */
  index: number;
  /** Line of the document's first content. */
  line: number;
  /** Line of the value at a JSON pointer, or of its nearest existing parent. */
  lineOf(pointer: string, key?: string): number;
}

export interface ParseFailure {
  line: number;
  message: string;
}

/**
 * Parses YAML (several `---` documents) or JSON text, keeping positions. Syntax errors and
 * duplicate keys are failures with their line; empty documents are skipped.
 */
export function parseDocuments(text: string, multi: boolean): { docs: SourceDoc[]; failures: ParseFailure[] } {
  const counter = new LineCounter();
  // logLevel 'error': yaml's warnings would go to stderr, outside the JSON log; what they warn
  // of (a collection as a key) is a failure below instead.
  const parsed = parseAllDocuments(text, {
    lineCounter: counter,
    uniqueKeys: true,
    prettyErrors: false,
    strict: true,
    logLevel: 'error',
  });
  const list = Array.isArray(parsed) ? parsed : [];
  const failures: ParseFailure[] = [];
  const docs: SourceDoc[] = [];
  const lineAt = (offset: number): number => counter.linePos(offset).line;
  // An error found at the end of the text (an unclosed bracket) points at the last line, not past it.
  const lastLine = text.replace(/\n+$/, '').split('\n').length;

  if (!multi && list.length > 1)
    failures.push({ line: lineAt(list[1]!.range[0]), message: 'a JSON file holds exactly one document' });
  list.forEach((doc, i) => {
    for (const err of doc.errors) {
      const message = /maximum call stack/i.test(err.message) ? 'nested too deeply' : err.message.split('\n')[0]!;
      const line = Math.min(lineAt(err.pos[0]), lastLine);
      if (!failures.some((f) => f.line === line && f.message === message)) failures.push({ line, message });
    }
    if (doc.errors.length > 0 || doc.contents === null) return;
    const root = doc.contents as Node;
    const refused = refusedNode(doc);
    if (refused) {
      failures.push({ line: lineAt(refused.node.range?.[0] ?? 0), message: refused.message });
      return;
    }
    let value: unknown;
    try {
      // Aliases are resolved here: an unknown anchor (also one set in another document) or an
      // alias bomb ("billion laughs") throws, and is this document's failure with the alias's line.
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      const message = (err as Error).message;
      const name = /alias.*: (\S+)$/i.exec(message)?.[1];
      const alias = findAlias(doc, name);
      const what = /excessive alias/i.test(message)
        ? 'too many alias expansions (more than 100): a YAML alias bomb is refused'
        : /unresolved alias/i.test(message)
          ? `alias *${name ?? '?'} names no anchor set before it in this document`
          : message;
      failures.push({ line: lineAt(alias?.range?.[0] ?? root.range?.[0] ?? 0), message: what });
      return;
    }
    if (value === null || value === undefined) return; // an empty document (e.g. a trailing ---)
    docs.push({
      value,
      index: i + 1,
      line: lineAt(root.range?.[0] ?? 0),
      lineOf: (pointer, key) => lineAt(offsetOf(doc, pointer, key)),
    });
  });
  return { docs, failures };
}

/** Splits a JSON pointer into its unescaped segments. */
export function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function offsetOf(doc: Document, pointer: string, key?: string): number {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
  const segments = pointerSegments(pointer);
  if (key !== undefined) segments.push(key);
  for (const [i, seg] of segments.entries()) {
    const isKey = key !== undefined && i === segments.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === seg);
      if (!pair) break;
      const target = isKey ? pair.key : pair.value;
      const range = (target as Node | null)?.range ?? (pair.key as Node | null)?.range;
      if (range) offset = range[0];
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)];
      if (!item) break;
      const range = (item as Node).range;
      if (range) offset = range[0];
      node = item;
    } else break;
  }
  return offset;
}

/**
 * The first node a document may not hold, in one walk: an alias inside the value it names (a
 * circular value) or a collection used as a key (JS objects would stringify it).
 */
function refusedNode(doc: Document): { node: Node; message: string } | undefined {
  let found: { node: Node; message: string } | undefined;
  visit(doc, {
    Pair(_, pair) {
      if (!isCollection(pair.key)) return undefined;
      found = { node: pair.key, message: 'a mapping key must be a plain value, not a list or a mapping' };
      return visit.BREAK;
    },
    Alias(_, alias, path) {
      if (!path.includes(alias.resolve(doc) as never)) return undefined;
      found = {
        node: alias,
        message: `alias *${alias.source} is inside the value it names: a circular value is refused`,
      };
      return visit.BREAK;
    },
  });
  return found;
}

/** The first alias named `name` (any alias when undefined), for the line of an alias error. */
function findAlias(doc: Document, name?: string): Node | undefined {
  let found: Node | undefined;
  visit(doc, {
    Alias(_, alias) {
      if (name !== undefined && alias.source !== name) return undefined;
      found = alias;
      return visit.BREAK;
    },
  });
  return found;
}
