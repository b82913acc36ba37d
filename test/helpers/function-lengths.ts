import ts from 'typescript';
import { readFile } from 'node:fs/promises';

export interface FunctionLength {
  file: string;
  name: string;
  line: number;
  lines: number;
}

/** The length in lines of every function, method and arrow function with a body in a source file. */
export async function functionLengths(file: string, label = file): Promise<FunctionLength[]> {
  const text = await readFile(file, 'utf8');
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: FunctionLength[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = src.getLineAndCharacterOfPosition(node.getStart(src)).line;
      const end = src.getLineAndCharacterOfPosition(node.getEnd()).line;
      out.push({ file: label, name: nameOf(node, src), line: start + 1, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return out;
}

function nameOf(node: ts.Node, src: ts.SourceFile): string {
  const named = node as ts.Node & { name?: ts.Node };
  if (named.name) return named.name.getText(src);
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent)) return parent.name.getText(src);
  if (parent && ts.isPropertyAssignment(parent)) return parent.name.getText(src);
  return '(anonymous)';
}
