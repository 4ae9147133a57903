import { fromBase64, fromNixBase32, isHex, parseSri, toHex } from '@airlock/core';
import { assertSchema } from '../schemas.js';
import type { NixFetch, ParsedInput } from '../types.js';
import {
  isHttpUrl,
  isRecord,
  isSafeFilename,
  parseJsonInput,
  parseListInput,
  throwIfProblems,
  urlBasename,
  type InputProblem,
} from './common.js';

export interface NixParseOptions {
  /**
   * `mirror://<name>/<path>` expansion (nixpkgs pkgs/build-support/fetchurl/mirrors.nix): name → base URLs
   * ending in `/`. Merged over DEFAULT_NIX_MIRRORS. A URL whose mirror is unknown is dropped with a note.
   */
  mirrors?: Record<string, string[]>;
  /** Skip recursive (NAR-hashed) fixed-output derivations with a note instead of refusing the input. */
  skipRecursive?: boolean;
}

export const DEFAULT_NIX_MIRRORS: Readonly<Record<string, readonly string[]>> = {
  gnu: ['https://ftpmirror.gnu.org/', 'https://ftp.gnu.org/pub/gnu/'],
};

type NixAlgo = 'sha256' | 'sha512';
/** Nix store path names (NixOS/nix src/libstore/path.cc checkName). */
export const NIX_STORE_NAME = /^[A-Za-z0-9+_?=-][A-Za-z0-9+._?=-]{0,210}$/;
const BYTES: Record<NixAlgo, number> = { sha256: 32, sha512: 64 };

/**
 * Decodes a Nix hash in any of the encodings Nix accepts: SRI (`sha256-<b64>`), `<algo>:<enc>`, or a bare base16
 * / nix-base32 / base64 string of the expected length. Only sha256 and sha512: md5/sha1 are too weak to pin.
 * https://nix.dev/manual/nix/2.18/language/builtins#builtins-hashString (encodings), NixOS/nix src/libutil/hash.cc
 */
export function parseNixHash(input: string, defaultAlgo?: string): { algo: NixAlgo; hex: string } {
  const s = input.trim();
  const sri = /^([a-z0-9]+)-([A-Za-z0-9+/]+={0,2})$/.exec(s);
  if (sri) {
    const algo = sri[1]!;
    if (algo !== 'sha256' && algo !== 'sha512')
      throw new Error(`hash algorithm '${algo}' is not accepted (sha256 or sha512 only)`);
    const d = parseSri(s)[0]!;
    return { algo, hex: d.hex };
  }
  const typed = /^([a-z0-9]+):(.+)$/.exec(s);
  const algoName = typed ? typed[1]! : defaultAlgo;
  const body = typed ? typed[2]! : s;
  if (algoName !== 'sha256' && algoName !== 'sha512') {
    throw new Error(
      algoName === undefined
        ? `cannot tell the algorithm of hash '${input}'`
        : `hash algorithm '${algoName}' is not accepted (sha256 or sha512 only)`,
    );
  }
  const n = BYTES[algoName];
  if (body.length === n * 2 && isHex(body.toLowerCase(), n)) return { algo: algoName, hex: body.toLowerCase() };
  if (body.length === Math.ceil((n * 8) / 5)) return { algo: algoName, hex: toHex(fromNixBase32(body, n)) };
  if (body.length === Math.ceil(n / 3) * 4) {
    const bytes = fromBase64(body);
    if (bytes.length === n) return { algo: algoName, hex: toHex(bytes) };
  }
  throw new Error(`'${input}' is not a ${algoName} hash in base16, nix-base32, base64 or SRI form`);
}

function expandUrls(
  urls: string[],
  mirrors: Record<string, readonly string[]>,
  notes: string[],
  where: string,
): string[] {
  const out: string[] = [];
  for (const u of urls) {
    const m = /^mirror:\/\/([^/]+)\/(.+)$/.exec(u);
    if (m) {
      const bases = mirrors[m[1]!];
      if (!bases || bases.length === 0) {
        notes.push(`${where}: dropped ${u} (no base URLs configured for mirror '${m[1]}')`);
        continue;
      }
      for (const b of bases) out.push(b.replace(/\/?$/, '/') + m[2]);
    } else {
      out.push(u);
    }
  }
  return [...new Set(out)];
}

function drvName(drvPath: string): string {
  const base = drvPath.slice(drvPath.lastIndexOf('/') + 1).replace(/\.drv$/, '');
  return /^[0-9a-z]{32}-(.+)$/.exec(base)?.[1] ?? base;
}

function filenameFor(urls: string[], name: string): string {
  for (const u of urls) {
    const b = urlBasename(u);
    if (b !== undefined && isSafeFilename(b)) return b;
  }
  return name;
}

/**
 * Reads `nix show-derivation -r` JSON (Nix 2.8 shape: `{ "<drv path>": { outputs: { out: { path, hash, hashAlgo } },
 * env: { urls | url, name, outputHash, … } } }`) and keeps the fixed-output derivations. Only flat FODs can be
 * mirrored as plain files (`hashed-mirrors` / `<mirror>/sha256/<hex>`); recursive (`r:`) ones hash a NAR
 * serialisation and are refused (NixOS/nix#5804). Non-FOD derivations are ignored.
 */
export function parseNixShowDerivation(
  text: string,
  source = 'nix show-derivation',
  options: NixParseOptions = {},
): ParsedInput<NixFetch> {
  const data = parseJsonInput(text, source);
  assertSchema('sync-nix-show-derivation', data, source, (k) => `derivation '${k}'`);
  const mirrors = { ...DEFAULT_NIX_MIRRORS, ...(options.mirrors ?? {}) };
  const notes: string[] = [];
  const problems: InputProblem[] = [];
  const entries: NixFetch[] = [];
  let nonFod = 0;
  for (const [drvPath, drv] of Object.entries(
    data as Record<string, { outputs: Record<string, Record<string, string>>; env?: Record<string, string> }>,
  )) {
    const withHash = Object.entries(drv.outputs).filter(([, o]) => typeof o.hash === 'string' && o.hash !== '');
    if (withHash.length === 0) {
      nonFod++;
      continue;
    }
    const env = drv.env ?? {};
    const name = env.name || drvName(drvPath);
    const entry = `${name} (${drvPath})`;
    if (!NIX_STORE_NAME.test(name)) {
      problems.push({ entry, problem: `'${name}' is not a valid store name` });
      continue;
    }
    const [outName, out] = withHash[0]!;
    if (withHash.length > 1 || outName !== 'out') {
      problems.push({ entry, problem: 'a fixed-output derivation must have exactly one output, "out"' });
      continue;
    }
    const hashAlgo = out.hashAlgo ?? '';
    const method = out.method ?? (hashAlgo.startsWith('r:') ? 'nar' : hashAlgo.startsWith('text:') ? 'text' : 'flat');
    if (method !== 'flat') {
      const why = `${method === 'nar' ? 'recursive (NAR-hashed)' : method} fixed-output derivation: only flat file hashes can be mirrored as plain files`;
      if (method === 'nar' && options.skipRecursive) notes.push(`${source}: skipped ${entry}: ${why}`);
      else problems.push({ entry, problem: why });
      continue;
    }
    const algo = hashAlgo.replace(/^[a-z]+:/, '');
    let parsed: { algo: NixAlgo; hex: string };
    try {
      parsed = parseNixHash(out.hash!, algo);
    } catch (err) {
      problems.push({ entry, problem: (err as Error).message });
      continue;
    }
    const given = [env.url, ...(env.urls ?? '').split(/\s+/)].filter(
      (u): u is string => typeof u === 'string' && u !== '',
    );
    const urls = expandUrls(given, mirrors, notes, `${source}: ${entry}`).filter((u) => {
      if (isHttpUrl(u)) return true;
      notes.push(`${source}: ${entry}: dropped non-http(s) URL ${u}`);
      return false;
    });
    if (urls.length === 0) {
      problems.push({
        entry,
        problem: given.length === 0 ? 'no url/urls in env' : `no fetchable http(s) URL among ${given.join(' ')}`,
      });
      continue;
    }
    entries.push({
      name,
      urls,
      outputHashAlgo: parsed.algo,
      outputHashMode: 'flat',
      outputHash: env.outputHash || out.hash!,
      expected: { [parsed.algo]: parsed.hex },
      drvPath,
    });
  }
  throwIfProblems(source, problems);
  if (nonFod > 0) notes.push(`${source}: ignored ${nonFod} derivation(s) that are not fixed-output`);
  return { kind: 'nix-drv', entries: dedupe(entries), notes };
}

/**
 * Reads a JSON/YAML Nix fetch list `[{ url | urls, hash, name? }]`; `hash` is sha256 base16, nix-base32, SRI or
 * `sha256:<…>` (sha512 SRI also accepted). Schema: schemas/sync-nix-fetch-list.schema.json.
 */
export function parseNixFetchList(
  text: string,
  source = 'nix fetch list',
  options: NixParseOptions = {},
): ParsedInput<NixFetch> {
  const data = parseListInput(text, source);
  const label = (k: string): string => {
    const e = Array.isArray(data) ? (data[Number(k)] as unknown) : undefined;
    if (!isRecord(e)) return `entry ${k}`;
    return typeof e.name === 'string' ? `'${e.name}'` : typeof e.url === 'string' ? `'${e.url}'` : `entry ${k}`;
  };
  if (Array.isArray(data)) {
    const unpinned: InputProblem[] = [];
    data.forEach((e, i) => {
      if (isRecord(e) && (typeof e.hash !== 'string' || e.hash === ''))
        unpinned.push({ entry: label(String(i)), problem: 'no hash', unpinned: true });
    });
    throwIfProblems(source, unpinned);
  }
  assertSchema('sync-nix-fetch-list', data, source, label);
  const mirrors = { ...DEFAULT_NIX_MIRRORS, ...(options.mirrors ?? {}) };
  const notes: string[] = [];
  const problems: InputProblem[] = [];
  const entries: NixFetch[] = [];
  (data as { url?: string; urls?: string[]; hash: string; name?: string }[]).forEach((e, i) => {
    const entry = label(String(i));
    let parsed: { algo: NixAlgo; hex: string };
    try {
      parsed = parseNixHash(e.hash, 'sha256');
    } catch (err) {
      problems.push({ entry, problem: (err as Error).message });
      return;
    }
    const urls = expandUrls([...(e.url ? [e.url] : []), ...(e.urls ?? [])], mirrors, notes, `${source}: ${entry}`);
    const bad = urls.filter((u) => !isHttpUrl(u));
    if (bad.length > 0 || urls.length === 0) {
      problems.push({ entry, problem: bad.length > 0 ? `not an http(s) URL: ${bad.join(', ')}` : 'no fetchable URL' });
      return;
    }
    const name = e.name ?? filenameFor(urls, '');
    if (name === '' || !NIX_STORE_NAME.test(name)) {
      problems.push({ entry, problem: `cannot use '${name}' as a store name; give 'name'` });
      return;
    }
    entries.push({
      name,
      urls,
      outputHashAlgo: parsed.algo,
      outputHashMode: 'flat',
      outputHash: e.hash,
      expected: { [parsed.algo]: parsed.hex },
    });
  });
  throwIfProblems(source, problems);
  return { kind: 'nix-fetch', entries: dedupe(entries), notes };
}

/** Same name + same pinned hash = one entry (a drv graph repeats sources); the urls are merged. */
function dedupe(entries: NixFetch[]): NixFetch[] {
  const by = new Map<string, NixFetch>();
  for (const e of entries) {
    const key = `${e.name}\0${e.outputHashAlgo}:${e.expected[e.outputHashAlgo]}`;
    const prev = by.get(key);
    if (prev) prev.urls = [...new Set([...prev.urls, ...e.urls])];
    else by.set(key, { ...e });
  }
  return [...by.values()];
}

export { filenameFor as nixFilenameFor };
