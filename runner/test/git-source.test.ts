import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkoutSource, resolveLocalRepo } from '../src/git-source.js';
import { git, gitProblem, makeFixtureRepo, rmrf, tempDir, toolsAvailable, type FixtureRepo } from './helpers.js';

const enabled = toolsAvailable('git checkout tests', [gitProblem()]);
const dir = tempDir('git');
afterAll(() => rmrf(dir));

describe.runIf(enabled)('checkoutSource', () => {
  let fx: FixtureRepo;
  let second: string;
  beforeAll(() => {
    fx = makeFixtureRepo('good', dir);
    // a second commit on main, and a side branch that does not contain it
    writeFileSync(join(fx.work, 'src', 'extra.txt'), 'line one\r\nline two\n');
    writeFileSync(join(fx.work, '.gitattributes'), '*.txt text eol=crlf\n');
    git(fx.work, 'add', '-A');
    git(fx.work, 'commit', '-q', '-m', 'second');
    second = git(fx.work, 'rev-parse', 'HEAD');
    git(fx.work, 'branch', 'side', fx.commit);
    git(fx.work, 'push', '-q', fx.repo, 'main', 'side');
  });

  const opts = () => ({ baseDir: dir, scratchHome: join(dir, 'git-home') });

  it('checks out the exact commit, records tree ids and the commit time', async () => {
    const target = join(dir, 'co1');
    const s = await checkoutSource({ repo: fx.repo, commit: fx.commit, ref: 'refs/heads/main' }, target, opts());
    expect(s.commit).toBe(fx.commit);
    expect(git(target, 'rev-parse', 'HEAD')).toBe(fx.commit);
    expect(s.gitTree).toBe(git(target, 'rev-parse', `${fx.commit}^{tree}`));
    expect(s.commitTime).toBe(Date.parse('2024-01-02T03:04:05Z') / 1000);
    expect(s.repoUri).toBe(`git+file://${fx.repo}`);
    expect(existsSync(join(target, 'build.sh'))).toBe(true);
    expect(existsSync(join(target, 'src', 'extra.txt'))).toBe(false); // not in this commit
  });

  it('computes airlock-tree-v1 from blob contents, independent of .gitattributes conversions', async () => {
    const target = join(dir, 'co2');
    const s = await checkoutSource({ repo: fx.repo, commit: second }, target, opts());
    // independent computation: sorted `<mode> <type> sha256:<blob sha256> <path>\0`
    const entries = git(target, 'ls-tree', '-r', '-z', '--full-tree', second)
      .split('\0')
      .filter((l) => l !== '')
      .map((l) => {
        const [meta, path] = l.split('\t') as [string, string];
        const [mode, type, oid] = meta.split(' ') as [string, string, string];
        return { mode, type, oid, path };
      })
      .sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
    const h = createHash('sha256');
    for (const e of entries) {
      const blob = execFileSync('git', ['cat-file', 'blob', e.oid], { cwd: target });
      h.update(`${e.mode} ${e.type} sha256:${createHash('sha256').update(blob).digest('hex')} ${e.path}\0`);
    }
    expect(s.treeSha256).toBe(h.digest('hex'));
    // the work tree got CRLF from .gitattributes; the digest did not (it reads the object database)
    expect(readFileSync(join(target, 'src', 'extra.txt'), 'utf8')).toContain('line two\r\n');
    // and a different commit gives a different digest
    const first = await checkoutSource({ repo: fx.repo, commit: fx.commit }, join(dir, 'co3'), opts());
    expect(first.treeSha256).not.toBe(s.treeSha256);
  });

  it('refuses a commit that is not in the repository', async () => {
    await expect(
      checkoutSource({ repo: fx.repo, commit: 'f'.repeat(40) }, join(dir, 'co4'), opts()),
    ).rejects.toMatchObject({
      code: 'RUNNER_SOURCE_COMMIT_NOT_FOUND',
      message: expect.stringContaining('ffffffff'),
    });
  });

  it('checks that source.ref exists and contains the commit', async () => {
    await expect(
      checkoutSource({ repo: fx.repo, commit: second, ref: 'refs/heads/side' }, join(dir, 'co5'), opts()),
    ).rejects.toMatchObject({
      code: 'RUNNER_SOURCE_COMMIT_NOT_FOUND',
      message: expect.stringMatching(/refs\/heads\/side .* does not contain commit/),
    });
    await expect(
      checkoutSource({ repo: fx.repo, commit: second, ref: 'refs/heads/nope' }, join(dir, 'co6'), opts()),
    ).rejects.toMatchObject({
      message: expect.stringContaining('does not exist'),
    });
    const ok = await checkoutSource(
      { repo: fx.repo, commit: fx.commit, ref: 'refs/heads/side' },
      join(dir, 'co7'),
      opts(),
    );
    expect(ok.ref).toBe('refs/heads/side');
  });

  it('accepts a relative path against the base directory and a file:// URL', async () => {
    const rel = await checkoutSource({ repo: 'good.git', commit: fx.commit }, join(dir, 'co8'), opts());
    expect(rel.commit).toBe(fx.commit);
    const url = await checkoutSource({ repo: `file://${fx.repo}`, commit: fx.commit }, join(dir, 'co9'), opts());
    expect(url.treeSha256).toBe(rel.treeSha256);
  });

  it('does not hardlink into the origin repository (the sandbox could write through a hardlink)', async () => {
    const target = join(dir, 'co10');
    await checkoutSource({ repo: fx.repo, commit: fx.commit }, target, opts());
    const out = git(target, 'count-objects', '-v');
    expect(out).toMatch(/count|in-pack/);
    const packs = readdirSync(join(target, '.git', 'objects', 'pack')).filter((f) => f.endsWith('.pack'));
    for (const p of packs) expect(statSync(join(target, '.git', 'objects', 'pack', p)).nlink).toBe(1);
  });
});

describe('resolveLocalRepo', () => {
  it('refuses remote URLs without a resolver, so nothing is fetched over the network', () => {
    for (const url of [
      'https://github.com/org/repo.git',
      'ssh://git@host/repo.git',
      'git@github.com:org/repo.git',
      'git://host/repo',
    ]) {
      expect(() => resolveLocalRepo(url, dir), url).toThrow(
        expect.objectContaining({
          code: 'RUNNER_SOURCE_UNSUPPORTED',
          message: expect.stringContaining('never fetches over the network'),
        }),
      );
    }
  });

  it('uses a resolver for remote URLs and checks the result is a directory', () => {
    expect(resolveLocalRepo('https://git.internal/app.git', dir, () => dir)).toBe(dir);
    expect(() => resolveLocalRepo('https://git.internal/app.git', dir, () => join(dir, 'nope'))).toThrow(
      expect.objectContaining({ code: 'RUNNER_SOURCE_UNSUPPORTED' }),
    );
    expect(() => resolveLocalRepo('/definitely/not/here', dir)).toThrow(
      expect.objectContaining({ code: 'RUNNER_SOURCE_UNSUPPORTED' }),
    );
  });
});
