import { readFileSync, readdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import ts from 'typescript';

/** A module one source file loads at run time (type-only imports are erased by Node). */
export interface RuntimeImport {
  file: string;
  specifier: string;
}

/** Every import, re-export and dynamic `import()` of a file that survives type stripping. */
export function runtimeImports(file: string, source: string): RuntimeImport[] {
  const sourceFile = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, false);
  const found: RuntimeImport[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      if (node.importClause?.isTypeOnly !== true) {
        found.push({ file, specifier: node.moduleSpecifier.text });
      }
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      if (!node.isTypeOnly) found.push({ file, specifier: node.moduleSpecifier.text });
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push({ file, specifier: node.arguments[0].text });
    } else if (
      // `import.meta.resolve('pkg/file')`: a package's file used at run time (the console
      // serves htmx from node_modules), so the package must be in the image too.
      ts.isCallExpression(node) &&
      ts.isPropertyAccessExpression(node.expression) &&
      node.expression.name.text === 'resolve' &&
      ts.isMetaProperty(node.expression.expression) &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push({ file, specifier: node.arguments[0].text });
    }
    ts.forEachChild(node, visit);
  };
  visit(sourceFile);
  return found;
}

/** `@scope/name/deep/path` → `@scope/name`; `name/deep` → `name`. */
export function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

interface LockFile {
  packages: Record<string, { dev?: boolean; devOptional?: boolean; link?: boolean }>;
}

/**
 * What `npm ci --omit=dev` leaves out: a package the lock file marks `dev` (reachable only
 * from devDependencies) or does not list at the top of node_modules at all.
 */
export function devOnlyImports(
  imports: RuntimeImport[],
  lockFile: LockFile,
  imageWorkspaces: ReadonlySet<string>,
): string[] {
  const problems: string[] = [];
  for (const { file, specifier } of imports) {
    if (specifier.startsWith('.') || specifier.startsWith('node:')) continue;
    if (builtinModules.includes(specifier)) continue;
    const name = packageName(specifier);
    if (name.startsWith('@berth/')) {
      if (!imageWorkspaces.has(name)) {
        problems.push(`${file} imports ${specifier}: workspace ${name} is not in the image`);
      }
      continue;
    }
    const entry = lockFile.packages[`node_modules/${name}`];
    if (entry === undefined) {
      problems.push(`${file} imports ${specifier}: ${name} is not installed by npm ci`);
    } else if (entry.dev === true || entry.devOptional === true) {
      problems.push(
        `${file} imports ${specifier}: ${name} is dev-only, npm ci --omit=dev leaves it out`,
      );
    }
  }
  return problems;
}

/** The non-test TypeScript files under a directory. */
export function sourceFiles(directory: string): string[] {
  return readdirSync(directory, { recursive: true, encoding: 'utf8' })
    .filter((path) => path.endsWith('.ts') && !path.endsWith('.test.ts'))
    .map((path) => join(directory, path))
    .sort();
}

export function readLockFile(path: string): LockFile {
  return JSON.parse(readFileSync(path, 'utf8')) as LockFile;
}
