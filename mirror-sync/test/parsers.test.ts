import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fromHex, toNixBase32 } from '@airlock/core';
import {
  detectInputKind,
  parseBazelFetchList,
  parseBazelQueryOutput,
  parseGenericList,
  parseNixFetchList,
  parseNixHash,
  parseNixShowDerivation,
  parseNpmLockfile,
  parseRequirementsTxt,
  type SyncError,
} from '../src/index.js';

const fixture = (name: string): string =>
  readFileSync(new URL(`../../fixtures/mirror-sync/${name}`, import.meta.url), 'utf8');

/** Runs fn, expects a SyncError with `code`, returns it for message assertions. */
function refused(fn: () => unknown, code: string): SyncError {
  try {
    fn();
  } catch (err) {
    expect((err as SyncError).code, (err as Error).message).toBe(code);
    return err as SyncError;
  }
  throw new Error('expected the input to be refused');
}

describe('parseNpmLockfile', () => {
  for (const v of ['v2', 'v3']) {
    it(`reads lockfile ${v}: registry packages, scoped names, aliases; skips root, workspaces, links, bundled`, () => {
      const r = parseNpmLockfile(fixture(`package-lock.${v}.json`), `package-lock.${v}.json`);
      const ids = r.entries.map((e) => `${e.name}@${e.version}`).sort();
      expect(ids).toEqual([
        '@babel/code-frame@7.23.5',
        '@babel/highlight@7.23.4',
        'chalk@2.4.2',
        'fsevents@2.3.3',
        'js-tokens@4.0.0', // nested duplicate collapsed
        'left-pad@1.3.0',
        'npm-bundler@1.0.0',
        'string-width@4.2.3', // alias: the real name, not the folder name
        'typescript@5.3.3',
      ]);
      const scoped = r.entries.find((e) => e.name === '@babel/code-frame')!;
      expect(scoped.resolved).toBe('https://registry.npmjs.org/@babel/code-frame/-/code-frame-7.23.5.tgz');
      expect(scoped.integrity).toMatch(/^sha512-/);
      expect(r.notes.join('\n')).toMatch(/bundled dependency inner-dep/);
      expect(r.notes.join('\n')).toMatch(/skipped link 'node_modules\/@demo\/util'/);
      expect(r.notes.join('\n')).toMatch(/workspace folder 'packages\/util'/);
    });
  }

  const lock = (packages: Record<string, unknown>): string =>
    JSON.stringify({ lockfileVersion: 3, packages: { '': { name: 'x' }, ...packages } });
  const good = {
    version: '1.0.0',
    resolved: 'https://registry.npmjs.org/ok/-/ok-1.0.0.tgz',
    integrity: 'sha512-' + 'A'.repeat(86) + '==',
  };

  it('refuses a registry dependency without integrity, naming it', () => {
    const err = refused(
      () =>
        parseNpmLockfile(
          lock({
            'node_modules/ok': good,
            'node_modules/left-pad': {
              version: '1.3.0',
              resolved: 'https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz',
            },
          }),
        ),
      'SYNC_UNPINNED',
    );
    expect(err.message).toContain('left-pad@1.3.0');
    expect(err.message).toContain("no 'integrity'");
    expect(err.message).not.toContain('ok@1.0.0');
  });

  it('keeps an entry without resolved (omit-lockfile-registry-resolved): the registry resolves it later', () => {
    const { entries } = parseNpmLockfile(
      lock({ 'node_modules/no-resolved': { version: '1.0.0', integrity: good.integrity } }),
    );
    expect(entries).toEqual([
      { name: 'no-resolved', version: '1.0.0', integrity: good.integrity, lockPath: 'node_modules/no-resolved' },
    ]);
  });

  it('refuses missing version, sha1-only integrity and git deps — all listed at once', () => {
    const err = refused(
      () =>
        parseNpmLockfile(
          lock({
            'node_modules/no-version': { resolved: good.resolved, integrity: good.integrity },
            'node_modules/weak': {
              version: '1.0.0',
              resolved: good.resolved,
              integrity: 'sha1-' + 'A'.repeat(27) + '=',
            },
            'node_modules/gitdep': {
              version: '1.0.0',
              resolved: 'git+ssh://git@github.com/a/b.git#abc',
              integrity: good.integrity,
            },
          }),
        ),
      'SYNC_UNPINNED',
    );
    for (const n of ['no-version', 'weak@1.0.0', 'gitdep@1.0.0']) expect(err.message).toContain(n);
    expect(err.details?.entries).toHaveLength(3);
  });

  it('refuses lockfileVersion 1, malformed JSON and schema violations', () => {
    expect(
      refused(() => parseNpmLockfile(JSON.stringify({ lockfileVersion: 1, dependencies: {} })), 'SYNC_INPUT_INVALID')
        .message,
    ).toMatch(/lockfileVersion 1/);
    refused(() => parseNpmLockfile('{ nope'), 'SYNC_INPUT_INVALID');
    const err = refused(
      () => parseNpmLockfile(lock({ 'node_modules/bad': { version: 7, resolved: good.resolved } })),
      'SYNC_INPUT_INVALID',
    );
    expect(err.message).toContain('node_modules/bad');
  });

  it('refuses a malformed integrity and an invalid name', () => {
    refused(
      () => parseNpmLockfile(lock({ 'node_modules/x': { ...good, integrity: 'sha512-!!!' } })),
      'SYNC_INPUT_INVALID',
    );
    refused(() => parseNpmLockfile(lock({ 'node_modules/x': { ...good, name: '../evil' } })), 'SYNC_INPUT_INVALID');
  });
});

describe('parseRequirementsTxt', () => {
  it('reads continuations, comments, markers, extras, several hashes and ignores global options', () => {
    const r = parseRequirementsTxt(fixture('requirements.txt'));
    expect(r.entries.map((e) => `${e.normalizedName}==${e.version}`)).toEqual([
      'certifi==2024.2.2',
      'charset-normalizer==3.3.2',
      'idna==3.6',
      'requests==2.31.0',
      'typing-extensions==4.9.0',
      'urllib3==2.2.1',
    ]);
    const req = r.entries.find((e) => e.name === 'requests')!;
    expect(req.extras).toEqual(['socks', 'security']);
    expect(req.markers).toBe('python_version >= "3.7" and sys_platform != "win32"');
    expect(r.entries.find((e) => e.name === 'certifi')!.sha256).toHaveLength(2);
    const te = r.entries.find((e) => e.normalizedName === 'typing-extensions')!;
    expect(te.name).toBe('Typing_Extensions');
    expect(te.sha256[0]).toMatch(/^[0-9a-f]{64}$/); // upper-case hex normalised
    expect(r.entries.find((e) => e.name === 'idna')!.line).toBe(18);
    expect(r.notes.join('\n')).toMatch(/--index-url/);
  });

  const H = `--hash=sha256:${'a'.repeat(64)}`;
  it.each([
    ['requests>=2.0 ' + H, 'requests', 'SYNC_UNPINNED'],
    ['requests==2.*  ' + H, 'requests', 'SYNC_UNPINNED'],
    ['flask==2.0.0', 'flask==2.0.0', 'SYNC_UNPINNED'],
    ['pkg @ https://example.com/pkg.whl ' + H, 'pkg', 'SYNC_UNPINNED'],
    ['-e git+https://example.com/x.git#egg=x', '-e git+https', 'SYNC_UNPINNED'],
    ['-r other.txt', '-r other.txt', 'SYNC_INPUT_INVALID'],
    [`six==1.16.0 --hash=md5:${'a'.repeat(32)}`, 'six', 'SYNC_INPUT_INVALID'],
    ['six==1.16.0 --hash=sha256:abcd', 'six', 'SYNC_INPUT_INVALID'],
  ])('refuses %j naming the entry', (line, name, code) => {
    const err = refused(() => parseRequirementsTxt(`ok==1.0 ${H}\n${line}\n`), code);
    expect(err.message).toContain(name);
    expect(err.message).toContain('line 2');
  });

  it('merges the same pin listed twice and keeps both hashes', () => {
    const r = parseRequirementsTxt(
      `Six==1.16.0 --hash=sha256:${'a'.repeat(64)}\nsix==1.16.0 --hash=sha256:${'b'.repeat(64)}\n`,
    );
    expect(r.entries).toHaveLength(1);
    expect(r.entries[0]!.sha256).toEqual(['a'.repeat(64), 'b'.repeat(64)]);
  });
});

describe('parseBazelQueryOutput', () => {
  it('reads http_archive/http_file rules from `bazel query --output=build`', () => {
    const r = parseBazelQueryOutput(fixture('bazel-query.txt'));
    expect(r.entries.map((e) => e.name)).toEqual(['rules_cc', 'zlib', 'com_google_protobuf', 'buildifier']);
    const zlib = r.entries.find((e) => e.name === 'zlib')!;
    // `url` comes first, then `urls` (what http.bzl does)
    expect(zlib.urls).toEqual([
      'https://zlib.net/fossils/zlib-1.2.12.tar.gz',
      'https://storage.googleapis.com/mirror.tensorflow.org/zlib.net/zlib-1.2.12.tar.gz',
    ]);
    expect(zlib.stripPrefix).toBe('zlib-1.2.12');
    expect(zlib.type).toBe('http_archive');
    expect(r.entries.find((e) => e.name === 'rules_cc')!.urls).toHaveLength(2);
    const pb = r.entries.find((e) => e.name === 'com_google_protobuf')!;
    expect(pb.sha256).toMatch(/^[0-9a-f]{64}$/); // from integrity = "sha256-…"
    const bf = r.entries.find((e) => e.name === 'buildifier')!;
    expect(bf.type).toBe('http_file');
    expect(bf.stripPrefix).toBeNull();
  });

  it('refuses a rule without sha256/integrity, naming it', () => {
    const text = `${fixture('bazel-query.txt')}\nhttp_archive(\n  name = "floating",\n  urls = ["https://example.com/latest.tar.gz"],\n  sha256 = "",\n)\n`;
    const err = refused(() => parseBazelQueryOutput(text), 'SYNC_UNPINNED');
    expect(err.message).toContain("'floating'");
    expect(err.message).not.toContain('rules_cc');
  });

  it('reports syntax errors with a line number', () => {
    const err = refused(
      () => parseBazelQueryOutput('http_archive(\n  name = "x",\n  urls = ["a" "b"],\n)\n', 'q.txt'),
      'SYNC_INPUT_INVALID',
    );
    expect(err.message).toMatch(/^q\.txt:3:/);
    refused(() => parseBazelQueryOutput('http_archive(name = "x", sha256 = "unterminated)\n'), 'SYNC_INPUT_INVALID');
  });

  it('refuses non-literal urls', () => {
    const err = refused(
      () => parseBazelQueryOutput(`http_archive(name = "x", urls = MIRRORS, sha256 = "${'a'.repeat(64)}")`),
      'SYNC_INPUT_INVALID',
    );
    expect(err.message).toContain('x');
  });
});

describe('parseBazelFetchList', () => {
  const sha = 'ab'.repeat(32);
  it('reads JSON and YAML', () => {
    const json = parseBazelFetchList(
      JSON.stringify([
        {
          name: 'greet',
          urls: ['https://github.com/example/greet/archive/v1.0.tar.gz'],
          sha256: sha,
          strip_prefix: 'greet-1.0',
        },
      ]),
    );
    const yaml = parseBazelFetchList(
      `- name: greet\n  urls:\n    - https://github.com/example/greet/archive/v1.0.tar.gz\n  sha256: ${sha.toUpperCase()}\n  strip_prefix: greet-1.0\n`,
    );
    expect(yaml.entries).toEqual(json.entries);
    expect(json.entries[0]).toMatchObject({
      name: 'greet',
      sha256: sha,
      stripPrefix: 'greet-1.0',
      type: 'http_archive',
    });
  });

  it('refuses entries without sha256 or with a bad one', () => {
    expect(
      refused(
        () => parseBazelFetchList(JSON.stringify([{ name: 'nohash', urls: ['https://x/y.tgz'] }])),
        'SYNC_UNPINNED',
      ).message,
    ).toContain("'nohash'");
    expect(
      refused(
        () => parseBazelFetchList(JSON.stringify([{ name: 'short', urls: ['https://x/y.tgz'], sha256: 'abc' }])),
        'SYNC_INPUT_INVALID',
      ).message,
    ).toContain("'short'");
    refused(
      () => parseBazelFetchList(JSON.stringify([{ name: 'ftp', urls: ['ftp://x/y.tgz'], sha256: sha }])),
      'SYNC_INPUT_INVALID',
    );
    refused(
      () => parseBazelFetchList(JSON.stringify([{ name: 'x', urls: ['https://x/y'], sha256: sha, extra: 1 }])),
      'SYNC_INPUT_INVALID',
    );
  });
});

describe('Nix inputs', () => {
  const helloHex = '8d99142afd92576f30b0cd7cb42a8dc6809998bc5d607d88761f512e26c7db20';

  it('parseNixHash accepts base16, nix-base32, SRI and typed forms alike', () => {
    const nix32 = toNixBase32(fromHex(helloHex));
    const sri = `sha256-${Buffer.from(helloHex, 'hex').toString('base64')}`;
    for (const s of [helloHex, nix32, sri, `sha256:${nix32}`, `sha256:${helloHex}`])
      expect(parseNixHash(s, 'sha256')).toEqual({ algo: 'sha256', hex: helloHex });
    expect(() => parseNixHash(`md5:${'a'.repeat(32)}`)).toThrow(/not accepted/);
    expect(() => parseNixHash('sha1-' + 'A'.repeat(27) + '=')).toThrow(/not accepted/);
    expect(() => parseNixHash('xyz', 'sha256')).toThrow();
  });

  it('refuses the sample by default because it holds a recursive FOD, naming it', () => {
    const err = refused(() => parseNixShowDerivation(fixture('nix-show-derivation.json')), 'SYNC_INPUT_INVALID');
    expect(err.message).toContain('source (/nix/store/k1xk6i3y7n0dhq6rl2ykz8h9d24lrr2z-source.drv)');
    expect(err.message).toMatch(/recursive/);
  });

  it('keeps flat FODs (mirror:// expanded), skips recursive ones when asked and ignores non-FODs', () => {
    const r = parseNixShowDerivation(fixture('nix-show-derivation.json'), 'drv.json', {
      skipRecursive: true,
      mirrors: { gnu: ['https://ftp.example.org/gnu/'] },
    });
    expect(r.entries.map((e) => e.name).sort()).toEqual(['bash52-001', 'hello-2.12.1.tar.gz']);
    const hello = r.entries.find((e) => e.name === 'hello-2.12.1.tar.gz')!;
    expect(hello.urls).toEqual(['https://ftp.example.org/gnu/hello/hello-2.12.1.tar.gz']);
    expect(hello.expected).toEqual({ sha256: helloHex });
    expect(hello.outputHash).toMatch(/^sha256-/); // as the derivation gave it
    const bash = r.entries.find((e) => e.name === 'bash52-001')!;
    expect(bash.urls).toEqual(['https://ftpmirror.gnu.org/bash/bash-5.2-patches/bash52-001']);
    expect(r.notes.join('\n')).toMatch(/skipped source/);
    expect(r.notes.join('\n')).toMatch(/ignored 1 derivation/);
  });

  it('parseNixFetchList reads the three encodings and refuses unhashed entries', () => {
    const nix32 = toNixBase32(fromHex(helloHex));
    const r = parseNixFetchList(
      JSON.stringify([
        { url: 'https://ftp.gnu.org/gnu/hello/hello-2.12.1.tar.gz', hash: helloHex },
        { urls: ['https://mirror.example/a.tar.gz'], hash: nix32, name: 'a.tar.gz' },
        { url: 'https://example.org/b.patch', hash: `sha256-${Buffer.from(helloHex, 'hex').toString('base64')}` },
      ]),
    );
    expect(r.entries.map((e) => e.expected.sha256)).toEqual([helloHex, helloHex, helloHex]);
    expect(r.entries[0]!.name).toBe('hello-2.12.1.tar.gz');
    expect(
      refused(() => parseNixFetchList('- url: https://example.org/floating.tar.gz\n'), 'SYNC_UNPINNED').message,
    ).toContain('floating.tar.gz');
    refused(() => parseNixFetchList(JSON.stringify([{ hash: helloHex }])), 'SYNC_INPUT_INVALID');
  });
});

describe('parseGenericList', () => {
  const sha = 'cd'.repeat(32);
  it('reads sha256, sha512 and SRI pins; the name defaults to the URL basename', () => {
    const r = parseGenericList(
      JSON.stringify([
        { url: 'https://example.org/dl/tool-1.0.tar.gz', sha256: sha },
        { url: 'https://example.org/dl/other.bin', sha512: 'ef'.repeat(64), name: 'other-1.bin' },
        { url: 'https://example.org/dl/third.zip', integrity: `sha384-${Buffer.alloc(48, 1).toString('base64')}` },
      ]),
    );
    expect(r.entries.map((e) => e.name)).toEqual(['tool-1.0.tar.gz', 'other-1.bin', 'third.zip']);
    expect(r.entries[2]!.expected.sha384).toBe('01'.repeat(48));
  });

  it('refuses unpinned entries and unsafe names, naming them', () => {
    expect(
      refused(() => parseGenericList(JSON.stringify([{ url: 'https://example.org/latest.tar.gz' }])), 'SYNC_UNPINNED')
        .message,
    ).toContain('latest.tar.gz');
    expect(
      refused(
        () =>
          parseGenericList(JSON.stringify([{ url: 'https://example.org/x', sha256: sha, name: '../../etc/passwd' }])),
        'SYNC_INPUT_INVALID',
      ).message,
    ).toContain('passwd');
    refused(
      () => parseGenericList(JSON.stringify([{ url: 'https://example.org/dir/', sha256: sha }])),
      'SYNC_INPUT_INVALID',
    );
    refused(
      () =>
        parseGenericList(JSON.stringify([{ url: 'https://example.org/a', integrity: 'sha1-' + 'A'.repeat(27) + '=' }])),
      'SYNC_UNPINNED',
    );
  });
});

describe('detectInputKind', () => {
  it('tells inputs apart by name and content', () => {
    expect(detectInputKind('/x/package-lock.json', '{}')).toBe('npm-lock');
    expect(detectInputKind('/x/lock.json', fixture('package-lock.v3.json'))).toBe('npm-lock');
    expect(detectInputKind('/x/requirements-dev.txt', '')).toBe('requirements');
    expect(detectInputKind('/x/pins.txt', fixture('requirements.txt'))).toBe('requirements');
    expect(detectInputKind('/x/q.txt', fixture('bazel-query.txt'))).toBe('bazel-query');
    expect(detectInputKind('/x/d.json', fixture('nix-show-derivation.json'))).toBe('nix-drv');
    expect(detectInputKind('/x/n.json', '[{"url":"https://a/b","hash":"x"}]')).toBe('nix-fetch');
    expect(detectInputKind('/x/b.yaml', '- name: a\n  urls: [https://a/b]\n  sha256: x\n')).toBe('bazel-fetch');
    expect(detectInputKind('/x/g.json', '[{"url":"https://a/b","sha256":"x"}]')).toBe('generic');
    expect(() => detectInputKind('/x/what.json', '{"hello": 1}')).toThrow(/kind/);
  });
});
