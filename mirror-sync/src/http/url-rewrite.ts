import { SyncError } from '../errors.js';

/**
 * Mirror mode: `{ 'https://registry.npmjs.org': 'http://127.0.0.1:4873/npm' }` sends every request for that origin
 * to the replacement base (path and query kept). The manifest still records the upstream URL: rewriting is
 * transport, not provenance.
 */
export class UrlRewriter {
  private readonly rules: { origin: string; base: string }[];

  constructor(map: Record<string, string> = {}) {
    this.rules = Object.entries(map).map(([from, to]) => {
      let origin: string;
      let base: URL;
      try {
        origin = new URL(from).origin;
        base = new URL(to);
      } catch (cause) {
        throw new SyncError('SYNC_OPTIONS_INVALID', `rewriteHosts: '${from}' -> '${to}' is not a pair of URLs`, {
          cause,
        });
      }
      if (!/^https?:$/.test(base.protocol) || origin === 'null') {
        throw new SyncError('SYNC_OPTIONS_INVALID', `rewriteHosts: '${from}' -> '${to}' must be http(s) URLs`);
      }
      return { origin, base: base.href.replace(/\/+$/, '') };
    });
  }

  rewrite(url: string): string {
    const u = new URL(url);
    for (const r of this.rules) {
      if (u.origin === r.origin) return r.base + u.pathname + u.search;
    }
    return url;
  }
}
