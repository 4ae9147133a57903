import { createHash } from 'node:crypto';
import type { SnapshotEntry, SnapshotManifest } from '../src/types.js';

const digest = (alg: string, s: string): string => createHash(alg).update(s).digest('hex');

export function digestsOf(
  content: string,
  algs: ('sha1' | 'sha256' | 'sha384' | 'sha512')[] = ['sha256', 'sha512', 'sha1'],
): SnapshotEntry['digests'] {
  const out: Record<string, string> = {};
  for (const a of algs) out[a] = digest(a, content);
  return out as SnapshotEntry['digests'];
}

export const SNAPSHOT_ID = `sha256:${digest('sha256', 'snapshot-7')}`;
export const PREVIOUS_ID = `sha256:${digest('sha256', 'snapshot-6')}`;

/** A transfer manifest with every ecosystem: scoped and unscoped npm, a wheel and an sdist, both bazel types, nix, generic. */
export function sampleManifest(): SnapshotManifest {
  const entries: SnapshotEntry[] = [
    {
      ecosystem: 'bazel',
      name: 'rules_go',
      version: null,
      filename: 'rules_go-v0.50.1.zip',
      urls: ['https://github.com/bazelbuild/rules_go/releases/download/v0.50.1/rules_go-v0.50.1.zip'],
      size: 111,
      digests: digestsOf('rules_go', ['sha256']),
      metadata: { repository: 'io_bazel_rules_go', stripPrefix: null, type: 'http_archive' },
    },
    {
      ecosystem: 'bazel',
      name: 'buildifier',
      version: null,
      filename: 'buildifier-linux-amd64',
      urls: ['https://github.com/bazelbuild/buildtools/releases/download/v7.3.1/buildifier-linux-amd64'],
      size: 112,
      digests: digestsOf('buildifier', ['sha256']),
      metadata: { repository: 'buildifier', stripPrefix: null, type: 'http_file' },
    },
    {
      ecosystem: 'generic',
      name: 'jq-linux64',
      version: null,
      filename: 'jq-linux64',
      urls: ['https://github.com/jqlang/jq/releases/download/jq-1.7.1/jq-linux64', 'https://mirror.example/jq-linux64'],
      size: 113,
      digests: digestsOf('jq', ['sha256', 'sha512']),
      metadata: {},
    },
    {
      ecosystem: 'nix',
      name: 'hello-2.12.1.tar.gz',
      version: null,
      filename: 'hello-2.12.1.tar.gz',
      urls: ['https://ftp.gnu.org/gnu/hello/hello-2.12.1.tar.gz'],
      size: 114,
      digests: digestsOf('hello', ['sha256']),
      metadata: { outputHashAlgo: 'sha256', outputHashMode: 'flat', outputHash: 'x', nixBase32: 'y' },
    },
    {
      ecosystem: 'npm',
      name: '@scope/name',
      version: '1.0.0',
      filename: 'name-1.0.0.tgz',
      urls: ['https://registry.npmjs.org/@scope/name/-/name-1.0.0.tgz'],
      size: 115,
      digests: digestsOf('scoped'),
      purl: 'pkg:npm/%40scope/name@1.0.0',
      metadata: { integrity: 'sha512-…', shasum: 'x' },
    },
    {
      ecosystem: 'npm',
      name: 'left-pad',
      version: '1.3.0',
      filename: 'left-pad-1.3.0.tgz',
      urls: ['https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz'],
      size: 116,
      digests: digestsOf('left-pad'),
      purl: 'pkg:npm/left-pad@1.3.0',
      metadata: {},
    },
    {
      ecosystem: 'pypi',
      name: 'requests',
      version: '2.32.3',
      filename: 'requests-2.32.3-py3-none-any.whl',
      urls: ['https://files.pythonhosted.org/packages/requests-2.32.3-py3-none-any.whl'],
      size: 117,
      digests: digestsOf('requests-whl', ['sha256']),
      purl: 'pkg:pypi/requests@2.32.3?file_name=requests-2.32.3-py3-none-any.whl',
      metadata: { project: 'requests', packagetype: 'bdist_wheel' },
    },
    {
      ecosystem: 'pypi',
      name: 'requests',
      version: '2.32.3',
      filename: 'requests-2.32.3.tar.gz',
      urls: ['https://files.pythonhosted.org/packages/requests-2.32.3.tar.gz'],
      size: 118,
      digests: digestsOf('requests-sdist', ['sha256']),
      purl: 'pkg:pypi/requests@2.32.3?file_name=requests-2.32.3.tar.gz',
      metadata: { project: 'requests', packagetype: 'sdist' },
    },
  ];
  return {
    mediaType: 'application/vnd.airlock.transfer-manifest.v1+json',
    snapshot: {
      id: SNAPSHOT_ID,
      sequence: 7,
      previous: PREVIOUS_ID,
      createdAt: '2026-11-28T15:00:00Z',
      producer: { name: 'airlock-mirror-sync', version: '0.1.0' },
    },
    blobs: entries
      .map((e) => ({ sha256: e.digests.sha256, size: e.size }))
      .sort((a, b) => (a.sha256 < b.sha256 ? -1 : 1)),
    entries,
  };
}

export function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}
