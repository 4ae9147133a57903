import { SyncError } from '../errors.js';
import { isRecord } from '../inputs/common.js';

/** One file of a project page, from either PEP 691 JSON or PEP 503 HTML. */
export interface SimpleFile {
  filename: string;
  /** Absolute http(s) URL without fragment. */
  url: string;
  /** Lowercased algorithm → lowercase hex. */
  hashes: Record<string, string>;
  requiresPython: string | null;
  /** false, or the reason ('' when none given). PEP 592. */
  yanked: false | string;
  /** PEP 658/714: false when not offered; true when offered without a hash; else its hashes. */
  coreMetadata: boolean | Record<string, string>;
}

export const SIMPLE_ACCEPT =
  'application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01';

/** PEP 629: refuse a major version we do not know. */
function checkApiVersion(v: unknown, where: string): void {
  if (v === undefined) return;
  if (typeof v !== 'string' || !/^1\.\d+$/.test(v)) {
    throw new SyncError(
      'SYNC_UPSTREAM_INVALID',
      `${where}: unsupported repository API version '${String(v)}' (need 1.x)`,
    );
  }
}

function absoluteUrl(href: string, pageUrl: string, where: string): { url: string; fragment: string } {
  let u: URL;
  try {
    u = new URL(href, pageUrl);
  } catch (cause) {
    throw new SyncError('SYNC_UPSTREAM_INVALID', `${where}: bad file URL '${href}'`, { cause });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new SyncError('SYNC_UPSTREAM_INVALID', `${where}: file URL '${href}' is not http(s)`);
  const fragment = u.hash.replace(/^#/, '');
  u.hash = '';
  return { url: u.href, fragment };
}

function hashesFrom(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isRecord(value)) return out;
  for (const [k, v] of Object.entries(value))
    if (typeof v === 'string' && /^[0-9a-fA-F]+$/.test(v)) out[k.toLowerCase()] = v.toLowerCase();
  return out;
}

/** PEP 691 project page. https://peps.python.org/pep-0691/#project-detail */
export function parseSimpleJson(text: string, pageUrl: string): { name: string | undefined; files: SimpleFile[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new SyncError('SYNC_UPSTREAM_INVALID', `${pageUrl}: project page is not JSON`, { cause });
  }
  if (!isRecord(doc) || !Array.isArray(doc.files))
    throw new SyncError('SYNC_UPSTREAM_INVALID', `${pageUrl}: project page has no 'files' array`);
  checkApiVersion(isRecord(doc.meta) ? doc.meta['api-version'] : undefined, pageUrl);
  const files: SimpleFile[] = [];
  for (const f of doc.files) {
    if (!isRecord(f) || typeof f.filename !== 'string' || typeof f.url !== 'string') {
      throw new SyncError('SYNC_UPSTREAM_INVALID', `${pageUrl}: a file record lacks filename/url`);
    }
    const { url } = absoluteUrl(f.url, pageUrl, pageUrl);
    const yanked = f.yanked === true ? '' : typeof f.yanked === 'string' ? f.yanked : false;
    const cm = f['core-metadata'] ?? f['dist-info-metadata'];
    files.push({
      filename: f.filename,
      url,
      hashes: hashesFrom(f.hashes),
      requiresPython:
        typeof f['requires-python'] === 'string' && f['requires-python'] !== '' ? f['requires-python'] : null,
      yanked,
      coreMetadata:
        cm === true ? true : isRecord(cm) ? (Object.keys(hashesFrom(cm)).length > 0 ? hashesFrom(cm) : true) : false,
    });
  }
  return { name: typeof doc.name === 'string' ? doc.name : undefined, files };
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

export function decodeHtmlEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]{1,6}|#\d{1,7}|[a-zA-Z]{2,8});/g, (m, body: string) => {
    if (body[0] === '#') {
      const cp = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return cp > 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) ? String.fromCodePoint(cp) : m;
    }
    return ENTITIES[body.toLowerCase()] ?? m;
  });
}

function parseAttributes(s: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  for (const m of s.matchAll(re)) {
    const name = m[1]!.toLowerCase();
    if (!out.has(name)) out.set(name, decodeHtmlEntities(m[2] ?? m[3] ?? m[4] ?? ''));
  }
  return out;
}

/** `sha256=<hex>` (PEP 503 fragment / PEP 658 attribute) → { sha256: hex }. */
function hashAttr(v: string): Record<string, string> {
  const m = /^([A-Za-z0-9]+)=([0-9a-fA-F]+)$/.exec(v.trim());
  return m ? { [m[1]!.toLowerCase()]: m[2]!.toLowerCase() } : {};
}

/** PEP 503 project page (with PEP 592/629/658/714 attributes). https://peps.python.org/pep-0503/ */
export function parseSimpleHtml(html: string, pageUrl: string): { files: SimpleFile[] } {
  const meta = /<meta\s[^>]*name\s*=\s*["']pypi:repository-version["'][^>]*>/i.exec(html);
  if (meta) checkApiVersion(parseAttributes(meta[0].slice(5, -1)).get('content'), pageUrl);
  const files: SimpleFile[] = [];
  for (const m of html.matchAll(/<a\b([^>]*)>([\s\S]*?)<\/a\s*>/gi)) {
    const attrs = parseAttributes(m[1]!);
    const href = attrs.get('href');
    if (href === undefined) continue;
    const filename = decodeHtmlEntities(m[2]!.replace(/<[^>]*>/g, '')).trim();
    const { url, fragment } = absoluteUrl(href, pageUrl, pageUrl);
    const cmAttr = attrs.get('data-core-metadata') ?? attrs.get('data-dist-info-metadata');
    let coreMetadata: SimpleFile['coreMetadata'] = false;
    if (cmAttr !== undefined) {
      const h = hashAttr(cmAttr);
      coreMetadata = Object.keys(h).length > 0 ? h : cmAttr.trim().toLowerCase() === 'false' ? false : true;
    }
    const rp = attrs.get('data-requires-python');
    files.push({
      filename,
      url,
      hashes: hashAttr(fragment),
      requiresPython: rp !== undefined && rp !== '' ? rp : null,
      yanked: attrs.has('data-yanked') ? attrs.get('data-yanked')! : false,
      coreMetadata,
    });
  }
  return { files };
}
