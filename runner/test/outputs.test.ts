import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collectOutputs, copyOutputs, globToRegExp } from '../src/outputs.js';
import { compareOutputs, describeDifferences } from '../src/reproducibility.js';
import { rmrf, tempDir } from './helpers.js';

const dir = tempDir('outputs');
afterAll(() => rmrf(dir));

function tree(root: string, files: Record<string, string>): string {
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(root, name, '..'), { recursive: true });
    writeFileSync(join(root, name), body);
  }
  return root;
}

describe('output globs', () => {
  it('matches *, ? within a segment and ** across segments', () => {
    const cases: [string, string, boolean][] = [
      ['*.txt', 'a.txt', true],
      ['*.txt', 'd/a.txt', false],
      ['**/*.txt', 'a.txt', true],
      ['**/*.txt', 'd/e/a.txt', true],
      ['dist/**', 'dist/x/y.js', true],
      ['dist/**', 'distx/y.js', false],
      ['a?c', 'abc', true],
      ['a?c', 'a/c', false],
      ['lib/*.so.1', 'lib/x.so.1', true],
      ['x+y(1).txt', 'x+y(1).txt', true],
      ['x.txt', 'xxtxt', false],
    ];
    for (const [pattern, path, want] of cases)
      expect(globToRegExp(pattern).test(path), `${pattern} ~ ${path}`).toBe(want);
  });
});

describe('collectOutputs', () => {
  const out = tree(join(dir, 'out1'), {
    'a.txt': 'A',
    'dist/app.js': 'js',
    'dist/sub/b.js': 'b',
    'dist/readme.md': 'r',
    'junk.log': 'j',
  });

  it('selects declared files with digests, sorted; a directory pattern means all files under it', async () => {
    const files = await collectOutputs(out, ['a.txt', 'dist/**/*.js']);
    expect(files.map((f) => f.name)).toEqual(['a.txt', 'dist/app.js', 'dist/sub/b.js']);
    expect(files[0]!.sha256).toBe(createHash('sha256').update('A').digest('hex'));
    expect((await collectOutputs(out, ['dist'])).map((f) => f.name)).toEqual([
      'dist/app.js',
      'dist/readme.md',
      'dist/sub/b.js',
    ]);
  });

  it('fails naming every declared output that was not produced', async () => {
    await expect(collectOutputs(out, ['a.txt', 'missing.bin', 'nope/*.so'])).rejects.toMatchObject({
      code: 'RUNNER_OUTPUT_MISSING',
      message: expect.stringContaining("'missing.bin', 'nope/*.so'"),
    });
  });

  it('refuses symlinked outputs (they could point at host files)', async () => {
    const o = tree(join(dir, 'out2'), { 'ok.txt': 'x' });
    symlinkSync('/etc/passwd', join(o, 'passwd'));
    await expect(collectOutputs(o, ['passwd'])).rejects.toMatchObject({
      code: 'RUNNER_OUTPUT_INVALID',
      message: expect.stringContaining("'passwd' (symlink)"),
    });
    await expect(collectOutputs(o, ['*'])).rejects.toMatchObject({ code: 'RUNNER_OUTPUT_INVALID' });
    // an unmatched symlink is ignored
    expect((await collectOutputs(o, ['ok.txt'])).map((f) => f.name)).toEqual(['ok.txt']);
  });

  it('copies outputs without setuid bits and never overwrites', async () => {
    const o = tree(join(dir, 'out3'), { 'bin/tool': '#!/bin/sh\n', 'data.txt': 'd' });
    chmodSync(join(o, 'bin/tool'), 0o4755);
    const files = await collectOutputs(o, ['bin/tool', 'data.txt']);
    const dest = join(dir, 'dest3');
    copyOutputs(o, files, dest);
    expect(statSync(join(dest, 'bin/tool')).mode & 0o7777).toBe(0o755);
    expect(statSync(join(dest, 'data.txt')).mode & 0o7777).toBe(0o644);
    expect(readFileSync(join(dest, 'data.txt'), 'utf8')).toBe('d');
    expect(() => copyOutputs(o, files, dest)).toThrow(/EEXIST/);
  });
});

describe('compareOutputs', () => {
  it('names changed, missing and extra files with the first differing byte', async () => {
    const a = tree(join(dir, 'cmpA'), { 'same.txt': 'same', 'stamp.txt': '2024-01-01T00:00:00', 'gone.txt': 'g' });
    const b = tree(join(dir, 'cmpB'), { 'same.txt': 'same', 'stamp.txt': '2024-01-01T00:00:07', 'new.txt': 'n' });
    const fa = await collectOutputs(a, ['*']);
    const fb = await collectOutputs(b, ['*']);
    const diffs = compareOutputs(a, fa, b, fb);
    expect(diffs.map((d) => [d.name, d.reason])).toEqual([
      ['gone.txt', 'missing-in-rebuild'],
      ['new.txt', 'only-in-rebuild'],
      ['stamp.txt', 'content-differs'],
    ]);
    expect(diffs[2]!.firstDifferenceAt).toBe(18);
    expect(describeDifferences(diffs)).toMatch(/stamp\.txt: content differs \(first at byte 18;/);
    expect(compareOutputs(a, fa, a, fa)).toEqual([]);
  });

  it('locates a difference that is only a length change', async () => {
    const a = tree(join(dir, 'lenA'), { f: 'abc' });
    const b = tree(join(dir, 'lenB'), { f: 'abcd' });
    const diffs = compareOutputs(a, await collectOutputs(a, ['f']), b, await collectOutputs(b, ['f']));
    expect(diffs[0]!.firstDifferenceAt).toBe(3);
  });
});
