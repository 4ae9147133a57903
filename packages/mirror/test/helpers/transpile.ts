import { mkdirSync, readdirSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * Transpiles this package's src/ (no type check) into a directory below packages/mirror/node_modules, so a child
 * process runs the code under test (Node 20 cannot run .ts, and dist/ may be stale). Returns the output root.
 */
export function transpileForChild(): string {
  const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const srcDir = join(pkgDir, 'src');
  const out = join(pkgDir, 'node_modules', `.airlock-test-${process.pid}-${Date.now()}`);
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts')) {
        const js = ts.transpileModule(ts.sys.readFile(path) ?? '', {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
          fileName: name,
        }).outputText;
        const target = join(out, relative(srcDir, path)).replace(/\.ts$/, '.js');
        mkdirSync(dirname(target), { recursive: true });
        writeFileSync(target, js);
      }
    }
  };
  walk(srcDir);
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n');
  return out;
}

/** Removes a transpiled tree and the package's node_modules directory if the test created it (only when empty). */
export function removeTranspiled(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  try {
    rmdirSync(dirname(dir));
  } catch {
    // not empty (real dependencies live there) or already gone
  }
}
