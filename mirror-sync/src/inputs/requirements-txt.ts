import { assertSchema } from '../schemas.js';
import type { ParsedInput, PinnedRequirement } from '../types.js';
import { throwIfProblems, type InputProblem } from './common.js';

/** PEP 503 name normalisation. https://peps.python.org/pep-0503/#normalized-names */
export function normalizePypiName(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

/** PEP 508 distribution name. */
const PEP508_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
/** Loose PEP 440 version (public + local): enough to refuse wildcards and ranges. */
const PEP440_VERSION =
  /^v?(?:\d+!)?\d+(?:\.\d+)*(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?\d*)?(?:-\d+|[-_.]?(?:post|rev|r)[-_.]?\d*)?(?:[-_.]?dev[-_.]?\d*)?(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$/i;

const GLOBAL_OPTIONS_IGNORED = new Set([
  '-i',
  '--index-url',
  '--extra-index-url',
  '-f',
  '--find-links',
  '--no-index',
  '--trusted-host',
  '--require-hashes',
  '--pre',
  '--prefer-binary',
  '--only-binary',
  '--no-binary',
  '--use-feature',
  '--config-settings',
]);
const INCLUDE_OPTIONS = new Set(['-r', '--requirement', '-c', '--constraint']);
const EDITABLE_OPTIONS = new Set(['-e', '--editable']);

/**
 * Parses a pip requirements file that pins every requirement as `name==version` with `--hash=sha256:…`
 * (the `pip-compile --generate-hashes` / `pip install --require-hashes` form).
 * https://pip.pypa.io/en/stable/reference/requirements-file-format/
 *
 * Continuation lines (`\`) are joined and `#` comments stripped first, as pip does. Environment markers are kept
 * but do not filter: the mirror must hold every platform's files. Several hashes per requirement mean "any of
 * these files" (one per wheel/sdist). Refused: ranges/wildcards, URL and editable requirements, nested `-r`/`-c`
 * files (pass them as separate inputs), hashes other than sha256, requirements without hashes.
 */
export function parseRequirementsTxt(text: string, source = 'requirements.txt'): ParsedInput<PinnedRequirement> {
  const notes: string[] = [];
  const problems: InputProblem[] = [];
  const byId = new Map<string, PinnedRequirement>();

  for (const { line, text: raw } of logicalLines(text)) {
    const content = stripComment(raw).trim();
    if (content === '') continue;
    const where = `line ${line}`;
    if (content.startsWith('-')) {
      const opt = /^(-[A-Za-z]|--[A-Za-z-]+)/.exec(content)![1]!;
      if (INCLUDE_OPTIONS.has(opt))
        problems.push({
          entry: `${where} (${content})`,
          problem: 'nested requirement/constraint files are not followed: pass each file as its own input',
        });
      else if (EDITABLE_OPTIONS.has(opt))
        problems.push({
          entry: `${where} (${content})`,
          problem: 'editable requirements cannot be mirrored',
          unpinned: true,
        });
      else if (GLOBAL_OPTIONS_IGNORED.has(opt))
        notes.push(`${source}: ${where}: ignored option ${opt} (the index is configured on the sync job)`);
      else notes.push(`${source}: ${where}: ignored unknown option ${opt}`);
      continue;
    }
    // Split the requirement from its per-requirement options (`--hash=…`), which start at the first ` --`.
    const optStart = content.search(/\s--?[A-Za-z]/);
    const reqPart = (optStart < 0 ? content : content.slice(0, optStart)).trim();
    const optPart = optStart < 0 ? '' : content.slice(optStart);

    const semi = reqPart.indexOf(';');
    const spec = (semi < 0 ? reqPart : reqPart.slice(0, semi)).trim();
    const markers = semi < 0 ? null : reqPart.slice(semi + 1).trim() || null;
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*(.*)$/.exec(spec);
    const name = m?.[1] ?? spec.split(/[\s=<>!~[@;]/)[0] ?? spec;
    const entry = `${name} (${where})`;
    if (!m || !PEP508_NAME.test(m[1]!)) {
      problems.push({ entry, problem: `cannot parse requirement '${spec}'` });
      continue;
    }
    const extras = (m[2] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    const versionSpec = m[3]!.trim();
    if (versionSpec.startsWith('@')) {
      problems.push({
        entry,
        problem: 'direct URL requirements are not supported: pin name==version from an index',
        unpinned: true,
      });
      continue;
    }
    const pin = /^===?\s*([^\s,;]+)$/.exec(versionSpec);
    if (!pin || pin[1]!.includes('*') || !PEP440_VERSION.test(pin[1]!)) {
      problems.push({
        entry,
        problem: `not pinned to one exact version ('${versionSpec || '(no version)'}'); use name==version`,
        unpinned: true,
      });
      continue;
    }
    const version = pin[1]!;

    const hashes: string[] = [];
    let bad = false;
    const optRe = /--([A-Za-z-]+)(?:[=\s]+(\S+))?/g;
    for (const o of optPart.matchAll(optRe)) {
      if (o[1] !== 'hash') {
        notes.push(`${source}: ${where}: ignored per-requirement option --${o[1]}`);
        continue;
      }
      const h = /^([a-z0-9]+):([0-9A-Fa-f]+)$/.exec(o[2] ?? '');
      if (!h) {
        problems.push({ entry, problem: `malformed --hash '${o[2] ?? ''}'` });
        bad = true;
      } else if (h[1] !== 'sha256') {
        problems.push({
          entry,
          problem: `--hash=${h[1]}:… is not supported; pin sha256 (what PEP 503/691 indexes publish)`,
        });
        bad = true;
      } else if (h[2]!.length !== 64) {
        problems.push({ entry, problem: `--hash=sha256:${h[2]} is not 64 hex characters` });
        bad = true;
      } else {
        hashes.push(h[2]!.toLowerCase());
      }
    }
    if (bad) continue;
    if (hashes.length === 0) {
      problems.push({ entry: `${name}==${version} (${where})`, problem: 'no --hash=sha256:… pin', unpinned: true });
      continue;
    }
    const normalizedName = normalizePypiName(name);
    const id = `${normalizedName}==${version}`;
    const prev = byId.get(id);
    if (prev) {
      for (const h of hashes) if (!prev.sha256.includes(h)) prev.sha256.push(h);
      continue;
    }
    byId.set(id, { name, normalizedName, version, extras, markers, sha256: [...new Set(hashes)], line });
  }
  throwIfProblems(source, problems);
  const entries = [...byId.values()];
  assertSchema('sync-requirements', entries, source, (k) => {
    const r = entries[Number(k)];
    return r ? `${r.name}==${r.version} (line ${r.line})` : `entry ${k}`;
  });
  return { kind: 'requirements', entries, notes };
}

/** Joins `\`-continued physical lines; remembers where each logical line started. */
function* logicalLines(text: string): Generator<{ line: number; text: string }> {
  const physical = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let buf = '';
  let start = 0;
  for (let i = 0; i < physical.length; i++) {
    const l = physical[i]!;
    if (buf === '') start = i + 1;
    if (/\\\s*$/.test(l) && !/^\s*#/.test(l)) {
      buf += l.replace(/\\\s*$/, ' ');
      continue;
    }
    buf += l;
    yield { line: start, text: buf };
    buf = '';
  }
  if (buf !== '') yield { line: start, text: buf };
}

/** pip: a comment starts at `#` at the line start or after whitespace. */
function stripComment(s: string): string {
  return s.replace(/(^|\s)#.*$/, '');
}
