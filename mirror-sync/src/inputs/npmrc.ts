import { SyncError } from '../errors.js';
import { isHttpUrl } from './common.js';

/** The registries an `.npmrc` names: `registry=` and `@scope:registry=`. Nothing else of it is used. */
export interface NpmRegistries {
  registry?: string;
  /** `@scope` → registry base (with its trailing slash). */
  scopes: Record<string, string>;
}

/** Keys that carry credentials (npm's nerf-darted `//host/:_authToken` and the legacy global forms). */
const CREDENTIAL_KEY = /^\/\/|(?:^|:)_auth|_authToken|_password|^username$|^email$|certfile|keyfile/i;

const base = (url: string): string => url.replace(/\/?$/, '/');

/**
 * Reads the registry settings of an `.npmrc` (ini `key=value` lines, `;`/`#` comments). Credential lines are
 * refused rather than ignored: the sync job never sends credentials, so a file holding them is the wrong file
 * to hand it (and nothing of it may end up in a log). `${ENV}` references are refused too: the file must say
 * literally which registry is meant.
 */
export function parseNpmrc(text: string, source = '.npmrc'): NpmRegistries {
  const out: NpmRegistries = { scopes: {} };
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    const key = (eq < 0 ? line : line.slice(0, eq)).trim();
    const value = eq < 0 ? '' : line.slice(eq + 1).trim();
    const where = `${source} line ${i + 1}`;
    if (CREDENTIAL_KEY.test(key))
      throw new SyncError(
        'SYNC_INPUT_INVALID',
        `${where}: '${key}' is a credential setting; airlock sync never sends registry credentials, so pass an .npmrc with only registry= and @scope:registry= lines`,
      );
    const scoped = /^(@[A-Za-z0-9][A-Za-z0-9._~-]*):registry$/.exec(key);
    if (key !== 'registry' && !scoped) return;
    if (!isHttpUrl(value) || value.includes('${'))
      throw new SyncError('SYNC_INPUT_INVALID', `${where}: ${key} must be an http(s) URL (got '${value}')`);
    if (scoped) out.scopes[scoped[1]!] = base(value);
    else out.registry = base(value);
  });
  return out;
}
