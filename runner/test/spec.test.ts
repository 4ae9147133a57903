import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { builderFor } from '../src/builders.js';
import { EXIT_CODES, exitCodeFor, RunnerError } from '../src/errors.js';
import { approvedMirrors, selectMirror } from '../src/mirror-selection.js';
import { runBuild } from '../src/run.js';
import { loadSpec, loadSpecFile, type BuildSpec } from '../src/spec.js';
import { rmrf, tempDir } from './helpers.js';

const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const good: BuildSpec = {
  source: { repo: '/srv/git/app.git', commit: COMMIT, ref: 'refs/heads/main' },
  builder: { type: 'command', argv: ['sh', 'build.sh'] },
  outputs: ['dist/app.tar.gz', 'dist/**/*.js'],
  mirror: { url: 'http://127.0.0.1:8080/' },
  env: ['BUILD_FLAVOR'],
  reproducible: true,
  timeoutSeconds: 600,
  image: { type: 'oci', repository: 'registry.internal:5000/team/app' },
};

function specError(value: unknown): RunnerError {
  try {
    loadSpec(value);
  } catch (err) {
    expect(err).toBeInstanceOf(RunnerError);
    return err as RunnerError;
  }
  throw new Error('expected the spec to be refused');
}

const clone = (): Record<string, unknown> => JSON.parse(JSON.stringify(good)) as Record<string, unknown>;
const dir = tempDir('spec');
afterAll(() => rmrf(dir));

describe('build spec validation (schemas/build-spec.v1.schema.json)', () => {
  it('accepts a complete command spec and digests its canonical JSON', () => {
    const a = loadSpec(good);
    expect(a.spec.source.commit).toBe(COMMIT);
    expect(a.digest).toMatch(/^[0-9a-f]{64}$/);
    // key order does not change the digest (RFC 8785)
    const reordered = {
      outputs: good.outputs,
      builder: good.builder,
      source: good.source,
      mirror: good.mirror,
      env: good.env,
      reproducible: true,
      timeoutSeconds: 600,
      image: good.image,
    };
    expect(loadSpec(reordered).digest).toBe(a.digest);
  });

  it('accepts bazel and nix builders in the schema', () => {
    expect(
      loadSpec({ ...good, builder: { type: 'bazel', targets: ['//app:bin', '@dep//:lib'] } }).spec.builder.type,
    ).toBe('bazel');
    expect(
      loadSpec({ ...good, builder: { type: 'nix', file: 'default.nix', attribute: 'app' } }).spec.builder.type,
    ).toBe('nix');
  });

  it('reads JSON and YAML files to the same spec and digest', () => {
    const json = join(dir, 'spec.json');
    const yaml = join(dir, 'spec.yaml');
    writeFileSync(json, JSON.stringify(good));
    writeFileSync(
      yaml,
      `source:\n  repo: /srv/git/app.git\n  commit: "${COMMIT}"\n  ref: refs/heads/main\nbuilder:\n  type: command\n  argv: [sh, build.sh]\noutputs:\n  - dist/app.tar.gz\n  - "dist/**/*.js"\nmirror: { url: "http://127.0.0.1:8080/" }\nenv: [BUILD_FLAVOR]\nreproducible: true\ntimeoutSeconds: 600\nimage: { type: oci, repository: registry.internal:5000/team/app }\n`,
    );
    const a = loadSpecFile(json);
    const b = loadSpecFile(yaml);
    expect(b.spec).toEqual(a.spec);
    expect(b.digest).toBe(a.digest);
    expect(a.baseDir).toBe(dir);
  });

  it('refuses a branch name instead of a commit, saying why', () => {
    const s = clone();
    (s.source as Record<string, unknown>).commit = 'main';
    const e = specError(s);
    expect(e.code).toBe('RUNNER_SPEC_INVALID');
    expect(e.message).toMatch(/source\.commit: 'main' is not a 40-hex commit id; a branch or tag name is refused/);
    expect(exitCodeFor(e)).toBe(EXIT_CODES.SPEC_ERROR);
  });

  it('refuses a spec with only a branch/ref and no commit', () => {
    const e1 = specError({ ...good, source: { repo: '/srv/git/app.git', branch: 'main' } });
    expect(e1.message).toMatch(/source\.commit: required; a branch \('main'\) alone is refused/);
    const e2 = specError({ ...good, source: { repo: '/srv/git/app.git', ref: 'refs/heads/main' } });
    expect(e2.message).toMatch(/source\.commit: required; a ref/);
  });

  it('refuses abbreviated, uppercase and YAML-numeric commits with a specific message', () => {
    expect(specError({ ...good, source: { repo: 'x', commit: '0123456' } }).message).toMatch(/abbreviated commit id/);
    expect(specError({ ...good, source: { repo: 'x', commit: COMMIT.toUpperCase() } }).message).toMatch(
      /must be lowercase hex/,
    );
    expect(specError({ ...good, source: { repo: 'x', commit: 1234 } }).message).toMatch(/quote the commit id/);
  });

  it('names the offending field for schema errors', () => {
    const cases: [unknown, RegExp][] = [
      [{ ...good, outputs: [] }, /outputs: must NOT have fewer than 1 items/],
      [{ ...good, outputs: ['../escape'] }, /outputs\[0\]: must be a relative/],
      [{ ...good, outputs: ['/abs/path'] }, /outputs\[0\]: must be a relative/],
      [{ ...good, outputs: ['a/./b'] }, /outputs\[0\]: must be a relative/],
      [{ ...good, builder: { type: 'command', argv: [] } }, /builder\.argv: must NOT have fewer than 1 items/],
      [{ ...good, builder: { type: 'command' } }, /builder: must have required property 'argv'/],
      [
        { ...good, builder: { type: 'make', argv: ['make'] } },
        /builder\.type: must be equal to one of the allowed values: "command", "bazel", "nix"/,
      ],
      [{ ...good, builder: { type: 'command', argv: ['sh'], targets: ['//x'] } }, /builder\.targets: unknown field/],
      [{ ...good, builder: { type: 'bazel', targets: ['not-a-label'] } }, /builder\.targets\[0\]: must match pattern/],
      [{ ...good, builder: { type: 'nix', file: '../x.nix', attribute: 'a' } }, /builder\.file: must be a relative/],
      [{ ...good, timeoutSeconds: 0 }, /timeoutSeconds: must be >= 1/],
      [{ ...good, reproducible: 'yes' }, /reproducible: must be boolean/],
      [{ ...good, env: ['BAD-NAME'] }, /env\[0\]: must be an environment variable name/],
      [{ ...good, mirror: { url: 'ftp://mirror' } }, /mirror\.url: must match pattern/],
      [{ ...good, mirror: { url: 'unix:/var/run/docker.sock' } }, /mirror\.url: must match pattern/],
      [{ ...good, mirror: { url: 'https://user@mirror.internal' } }, /mirror\.url: must match pattern/],
      [
        { ...good, mirror: { name: 'lab', url: 'http://127.0.0.1:8080' } },
        /mirror: must NOT have more than 1 properties/,
      ],
      [{ ...good, image: { type: 'oci', repository: 'Bad Repo' } }, /image\.repository: must match pattern/],
      [{ ...good, image: { type: 'docker', repository: 'r.internal/app' } }, /image\.type: must be equal to constant/],
      [{ ...good, surprise: 1 }, /surprise: unknown field/],
      [{ ...good, source: { ...good.source, ref: 'main' } }, /source\.ref: must match pattern/],
      [{ ...good, source: { repo: '', commit: COMMIT } }, /source\.repo: must NOT have fewer than 1 characters/],
    ];
    for (const [value, re] of cases) {
      const e = specError(value);
      expect(e.code, JSON.stringify(value)).toBe('RUNNER_SPEC_INVALID');
      expect(e.message, JSON.stringify(value)).toMatch(re);
    }
  });

  it('refuses pass-through of variables the runner controls', () => {
    for (const name of ['PATH', 'HOME', 'SOURCE_DATE_EPOCH', 'AIRLOCK_MIRROR_URL', 'LD_PRELOAD']) {
      const e = specError({ ...good, env: ['OK', name] });
      expect(e.message).toContain(`env[1]: '${name}' is set by the runner`);
    }
  });

  it('reports unreadable and malformed spec files as spec errors', () => {
    expect(() => loadSpecFile(join(dir, 'missing.json'))).toThrow(
      expect.objectContaining({ code: 'RUNNER_SPEC_UNREADABLE' }),
    );
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'source: [unclosed\n');
    expect(() => loadSpecFile(bad)).toThrow(expect.objectContaining({ code: 'RUNNER_SPEC_UNREADABLE' }));
    const dup = join(dir, 'dup.yaml');
    writeFileSync(dup, `source: {repo: x, commit: "${COMMIT}"}\nsource: {repo: y, commit: "${COMMIT}"}\n`);
    expect(() => loadSpecFile(dup)).toThrow(expect.objectContaining({ code: 'RUNNER_SPEC_UNREADABLE' }));
  });

  it('gives bazel/nix specs their builders (exit code 14 stays mapped for builder types a runner lacks)', () => {
    const specs: BuildSpec['builder'][] = [
      { type: 'bazel', targets: ['//app:bin'] },
      { type: 'nix', file: 'default.nix', attribute: 'app' },
    ];
    for (const b of specs) {
      try {
        expect(builderFor(b).type).toBe(b.type);
      } catch (err) {
        // a host without bazel/nix: refused as unavailable, never as not implemented
        expect(err).toMatchObject({ code: 'RUNNER_TOOL_MISSING' });
      }
    }
    expect(exitCodeFor(new RunnerError('RUNNER_BUILDER_NOT_IMPLEMENTED', 'x'))).toBe(EXIT_CODES.NOT_IMPLEMENTED);
  });

  it('refuses a builderId that is not a URI', async () => {
    await expect(runBuild(good, { outDir: join(dir, 'o2'), builderId: 'runner 1' })).rejects.toMatchObject({
      code: 'RUNNER_SPEC_INVALID',
    });
  });
});

describe('exit codes', () => {
  it('maps every outcome to a distinct code and unknown errors to INTERNAL', () => {
    const codes = {
      RUNNER_SPEC_INVALID: EXIT_CODES.SPEC_ERROR,
      RUNNER_BUILD_FAILED: EXIT_CODES.BUILD_FAILED,
      RUNNER_BUILD_TIMEOUT: EXIT_CODES.BUILD_FAILED,
      RUNNER_HERMETICITY_VIOLATION: EXIT_CODES.HERMETICITY_VIOLATION,
      RUNNER_REPRODUCIBILITY_FAILED: EXIT_CODES.REPRODUCIBILITY_FAILED,
      RUNNER_SIGNING_FAILED: EXIT_CODES.SIGNING_FAILED,
      RUNNER_TOOL_MISSING: EXIT_CODES.UNAVAILABLE,
    } as const;
    for (const [code, exit] of Object.entries(codes))
      expect(exitCodeFor(new RunnerError(code as keyof typeof codes, 'x'))).toBe(exit);
    expect(new Set(Object.values(EXIT_CODES)).size).toBe(Object.keys(EXIT_CODES).length);
    expect(exitCodeFor(new Error('boom'))).toBe(EXIT_CODES.INTERNAL);
    expect(exitCodeFor({ code: 'toString' })).toBe(EXIT_CODES.INTERNAL);
  });
});

describe('mirror selection: the operator approves mirrors, a spec only picks one', () => {
  const approved = approvedMirrors({
    mirrorUnixSocket: '/run/airlock/mirror.sock',
    mirrors: [
      { name: 'lab', url: 'http://10.0.0.5:4873/base' },
      { name: 'dmz', url: 'http://127.0.0.1:8080' },
    ],
  });
  const pick = (mirror?: BuildSpec['mirror']) =>
    selectMirror({ ...good, ...(mirror ? { mirror } : { mirror: undefined }) }, approved);

  it('selects by name or by exact URL (a trailing slash aside), defaulting to the first approved mirror', () => {
    expect(pick()).toEqual({ unixSocket: '/run/airlock/mirror.sock' });
    expect(pick({ name: 'dmz' })).toEqual({ name: 'dmz', url: 'http://127.0.0.1:8080' });
    expect(pick({ url: 'http://127.0.0.1:8080/' })).toEqual({ name: 'dmz', url: 'http://127.0.0.1:8080' });
    expect(pick({ url: 'http://10.0.0.5:4873/base' })?.name).toBe('lab');
  });

  it('refuses an unknown name, another URL or a path of the approved host (exit 2), naming what is approved', () => {
    for (const m of [{ name: 'docker' }, { url: 'http://10.0.0.5:4873' }, { url: 'http://127.0.0.1:2375' }] as const) {
      let err: unknown;
      try {
        pick(m);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(m)).toBeInstanceOf(RunnerError);
      expect(exitCodeFor(err)).toBe(EXIT_CODES.SPEC_ERROR);
      expect((err as Error).message).toMatch(/is not a mirror the operator approved \(approved: .*lab, dmz\)/);
    }
    expect(() => selectMirror({ ...good, mirror: { name: 'lab' } }, [])).toThrow(
      /none was given: airlock run --mirror/,
    );
  });

  it('refuses duplicate or malformed operator mirror names', () => {
    expect(() =>
      approvedMirrors({
        mirrors: [
          { name: 'a', url: 'http://x' },
          { name: 'a', url: 'http://y' },
        ],
      }),
    ).toThrow(/given twice/);
    expect(() => approvedMirrors({ mirrors: [{ name: 'a b', url: 'http://x' }] })).toThrow(/not a valid name/);
  });
});
