/** The offline OSV deny-list: record checks, package identity from purls, versions lists and range evaluation. */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  advisoriesFor,
  compareGeneric,
  indexAdvisories,
  loadOsvDirectory,
  parseOsv,
  parsePurl,
  globToRegExp,
} from '../src/index.js';

const OSV_DIR = fileURLToPath(new URL('../../../fixtures/policy/osv', import.meta.url));
const index = indexAdvisories(loadOsvDirectory(OSV_DIR));
const ids = (purl: string): string[] => advisoriesFor(index, purl).map((a) => a.id);

describe('OSV deny-list', () => {
  it('loads every record of the directory (recursively, sorted)', () => {
    expect(loadOsvDirectory(OSV_DIR).map((a) => a.id)).toEqual([
      'GHSA-35jh-r3h4-6jhm',
      'GHSA-test-acme-logger',
      'GHSA-test-withdrawn',
      'PYSEC-2023-74',
    ]);
  });

  it('ECOSYSTEM range introduced 0 / fixed (npm, compared as semver)', () => {
    expect(ids('pkg:npm/lodash@4.17.20')).toEqual(['GHSA-35jh-r3h4-6jhm']);
    expect(ids('pkg:npm/lodash@0.1.0')).toEqual(['GHSA-35jh-r3h4-6jhm']);
    expect(ids('pkg:npm/lodash@4.17.21')).toEqual([]);
    expect(ids('pkg:npm/lodash@5.0.0-beta.1')).toEqual([]);
    expect(ids('pkg:npm/lodash')).toEqual([]); // no version: nothing to compare
    expect(ids('pkg:npm/lodash-es@4.17.20')).toEqual([]);
  });

  it('SEMVER range with last_affected, an explicit versions list, and a scoped npm name', () => {
    expect(ids('pkg:npm/%40acme/logger@2.1.0')).toEqual(['GHSA-test-acme-logger']);
    expect(ids('pkg:npm/%40acme/logger@2.3.4')).toEqual(['GHSA-test-acme-logger']);
    expect(ids('pkg:npm/%40acme/logger@2.3.5')).toEqual([]);
    expect(ids('pkg:npm/%40acme/logger@2.0.1')).toEqual([]);
    expect(ids('pkg:npm/%40acme/logger@1.9.9')).toEqual(['GHSA-test-acme-logger']);
  });

  it('a withdrawn advisory never denies', () => {
    expect(ids('pkg:npm/left-pad@1.3.0')).toEqual([]);
  });

  it('PyPI: ECOSYSTEM range in a generic version order, names PEP 503-normalised, purl qualifiers ignored', () => {
    expect(ids('pkg:pypi/requests@2.30.0')).toEqual(['PYSEC-2023-74']);
    expect(ids('pkg:pypi/requests@2.3.0')).toEqual(['PYSEC-2023-74']);
    expect(ids('pkg:pypi/Requests@2.28.1?file_name=requests-2.28.1-py3-none-any.whl')).toEqual(['PYSEC-2023-74']);
    expect(ids('pkg:pypi/requests@2.31.0')).toEqual([]);
    expect(ids('pkg:pypi/requests@2.2.1')).toEqual([]);
    expect(ids('pkg:npm/requests@2.30.0')).toEqual([]); // another ecosystem
  });

  it('generic version order: numeric runs as numbers, a release after its pre-releases', () => {
    expect(compareGeneric('2.10', '2.9')).toBe(1);
    expect(compareGeneric('1.0rc1', '1.0')).toBe(-1);
    expect(compareGeneric('1.0', '1.0.0')).toBe(0);
    expect(compareGeneric('1.0', '1.0.1')).toBe(-1);
    expect(compareGeneric('1.0.post1', '1.0')).toBe(1);
    expect(compareGeneric('v3.1', '3.1')).toBe(0);
  });

  it('refuses malformed records, naming the file and field', () => {
    expect(() => parseOsv('{"id": 5}', 'x.json')).toThrow(
      expect.objectContaining({ code: 'POLICY_ADVISORY_INVALID', message: 'x.json: id must be a non-empty string' }),
    );
    expect(() =>
      parseOsv('{"id":"A","affected":[{"ranges":[{"type":"SEMVER","events":[{"fixed":1}]}]}]}', 'y.json'),
    ).toThrow(/y\.json: affected\[0\]\.ranges\[0\]\.events\[0\] must be one of/);
    expect(() => parseOsv('not json', 'z.json')).toThrow(/z\.json: not JSON/);
  });
});

describe('purls and globs', () => {
  it('parses purls', () => {
    expect(parsePurl('pkg:npm/%40acme/logger@2.0.1')).toEqual({
      type: 'npm',
      namespace: '@acme',
      name: 'logger',
      version: '2.0.1',
    });
    expect(parsePurl('pkg:generic/tool.tar.gz?download_url=x')).toEqual({ type: 'generic', name: 'tool.tar.gz' });
    expect(parsePurl('https://example.com/x')).toBeUndefined();
  });

  it('globs: * stays within a segment, ** crosses, anchored', () => {
    expect(globToRegExp('https://git.corp.example/acme/*.git').test('https://git.corp.example/acme/app.git')).toBe(
      true,
    );
    expect(globToRegExp('https://git.corp.example/acme/*.git').test('https://git.corp.example/acme/x/app.git')).toBe(
      false,
    );
    expect(globToRegExp('https://git.corp.example/**').test('https://git.corp.example/acme/x/app.git')).toBe(true);
    expect(globToRegExp('https://git.corp.example/acme/app.git').test('https://git.corp.exampleXacme/app.git')).toBe(
      false,
    );
    expect(globToRegExp('main').test('evil/main')).toBe(false);
  });
});
