import { fromHex, toNixBase32 } from '@airlock/core';
import { isSafeFilename, urlBasename } from '../inputs/common.js';
import { nixFilenameFor } from '../inputs/nix.js';
import type { BazelFetch, GenericFetch, NixFetch } from '../types.js';
import type { EntryTask, ResolveContext } from './context.js';
import { genericPurl } from './purl.js';

function firstSafeBasename(urls: readonly string[], fallback: string): string {
  for (const u of urls) {
    const b = urlBasename(u);
    if (b !== undefined && isSafeFilename(b)) return b;
  }
  return fallback;
}

/** Bazel archives/files: the filename is the first URL's basename (what `--distdir` looks up). */
export function bazelTasks(items: readonly BazelFetch[], ctx: ResolveContext): EntryTask[] {
  return items.map((b) => ({
    label: `bazel ${b.name}`,
    run: async () => {
      ctx.planned(1);
      const blob = await ctx.store
        .fetchPinned({ what: `bazel ${b.name}`, urls: b.urls, expected: b.expected, maxBytes: ctx.maxBlobBytes })
        .finally(ctx.done);
      return [
        {
          ecosystem: 'bazel' as const,
          name: b.name,
          version: null,
          filename: firstSafeBasename(b.urls, b.name),
          urls: b.urls,
          blob,
          purl: genericPurl(b.name, blob.sha256, b.urls[0]),
          metadata: { repository: b.name, stripPrefix: b.stripPrefix, type: b.type },
        },
      ];
    },
  }));
}

/** Flat fixed-output derivations: served by the mirror as `<algo>/<hash>` (hashed-mirrors), so name matters less. */
export function nixTasks(items: readonly NixFetch[], ctx: ResolveContext): EntryTask[] {
  return items.map((n) => ({
    label: `nix ${n.name}`,
    run: async () => {
      ctx.planned(1);
      const blob = await ctx.store
        .fetchPinned({ what: `nix ${n.name}`, urls: n.urls, expected: n.expected, maxBytes: ctx.maxBlobBytes })
        .finally(ctx.done);
      return [
        {
          ecosystem: 'nix' as const,
          name: n.name,
          version: null,
          filename: nixFilenameFor(n.urls, isSafeFilename(n.name) ? n.name : `${blob.sha256}`),
          urls: n.urls,
          blob,
          purl: genericPurl(n.name, blob.sha256, n.urls[0]),
          metadata: {
            outputHashAlgo: n.outputHashAlgo,
            outputHashMode: n.outputHashMode,
            outputHash: n.outputHash,
            nixBase32: toNixBase32(fromHex(blob.sha256)),
          },
        },
      ];
    },
  }));
}

export function genericTasks(items: readonly GenericFetch[], ctx: ResolveContext): EntryTask[] {
  return items.map((g) => ({
    label: `generic ${g.name}`,
    run: async () => {
      ctx.planned(1);
      const blob = await ctx.store
        .fetchPinned({ what: `generic ${g.name}`, urls: [g.url], expected: g.expected, maxBytes: ctx.maxBlobBytes })
        .finally(ctx.done);
      return [
        {
          ecosystem: 'generic' as const,
          name: g.name,
          version: null,
          filename: g.name,
          urls: [g.url],
          blob,
          purl: genericPurl(g.name, blob.sha256, g.url),
          metadata: {},
        },
      ];
    },
  }));
}
