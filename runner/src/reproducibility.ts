import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { execFileBounded, which } from './exec.js';
import type { OutputFile } from './outputs.js';

export interface OutputDifference {
  name: string;
  reason: 'content-differs' | 'missing-in-rebuild' | 'only-in-rebuild';
  sha256?: string;
  rebuildSha256?: string;
  /** Byte offset of the first difference (content-differs only). */
  firstDifferenceAt?: number;
}

/** What the rebuild varied, recorded in provenance byproducts. */
export interface RebuildVariations {
  buildPath: boolean;
  hostname: boolean;
  home: boolean;
  environmentNoise: boolean;
  /** 'faketime' when libfaketime shifted the clock, else 'wall-clock' (the rebuild simply runs later). */
  time: 'faketime' | 'wall-clock';
}

export type ReproducibilityResult =
  | { status: 'not-requested' }
  | { status: 'reproduced'; files: number; variations: RebuildVariations; rebuildDurationMs: number }
  | { status: 'differs'; differences: OutputDifference[]; variations: RebuildVariations; diffoscope?: string };

/** Compares two output sets by name and sha256; the first byte that differs is located for changed files. */
export function compareOutputs(
  firstDir: string,
  first: readonly OutputFile[],
  secondDir: string,
  second: readonly OutputFile[],
): OutputDifference[] {
  const b = new Map(second.map((f) => [f.name, f]));
  const diffs: OutputDifference[] = [];
  for (const f of first) {
    const g = b.get(f.name);
    if (!g) diffs.push({ name: f.name, reason: 'missing-in-rebuild', sha256: f.sha256 });
    else if (g.sha256 !== f.sha256) {
      diffs.push({
        name: f.name,
        reason: 'content-differs',
        sha256: f.sha256,
        rebuildSha256: g.sha256,
        firstDifferenceAt: firstDifference(join(firstDir, f.name), join(secondDir, f.name)),
      });
    }
    b.delete(f.name);
  }
  for (const g of b.values()) diffs.push({ name: g.name, reason: 'only-in-rebuild', rebuildSha256: g.sha256 });
  return diffs.sort((x, y) => (x.name < y.name ? -1 : 1));
}

function firstDifference(a: string, b: string): number {
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  try {
    const ba = Buffer.alloc(65536);
    const bb = Buffer.alloc(65536);
    let pos = 0;
    while (true) {
      const na = readSync(fa, ba, 0, ba.length, pos);
      const nb = readSync(fb, bb, 0, bb.length, pos);
      const n = Math.min(na, nb);
      for (let i = 0; i < n; i++) if (ba[i] !== bb[i]) return pos + i;
      if (na !== nb) return pos + n;
      if (na === 0) return pos;
      pos += n;
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}

/** diffoscope's text report for the first few differing files, when diffoscope is installed (bounded). */
export async function diffoscopeSummary(
  firstDir: string,
  secondDir: string,
  diffs: readonly OutputDifference[],
  maxFiles = 3,
): Promise<string | undefined> {
  const diffoscope = which('diffoscope');
  if (!diffoscope) return undefined;
  const parts: string[] = [];
  for (const d of diffs.filter((x) => x.reason === 'content-differs').slice(0, maxFiles)) {
    try {
      const r = await execFileBounded(
        diffoscope,
        [
          '--no-progress',
          '--text',
          '-',
          '--max-text-report-size',
          '16384',
          '--',
          join(firstDir, d.name),
          join(secondDir, d.name),
        ],
        {
          timeoutMs: 120_000,
          maxStdout: 1 << 20,
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C.UTF-8', HOME: secondDir },
        },
      );
      parts.push(r.stdout.toString('utf8').slice(0, 16384));
    } catch {
      // diffoscope is a convenience: its failure does not change the verdict
    }
  }
  return parts.length > 0 ? parts.join('\n') : undefined;
}

export function describeDifferences(diffs: readonly OutputDifference[]): string {
  return diffs
    .map((d) =>
      d.reason === 'content-differs'
        ? `${d.name}: content differs (first at byte ${d.firstDifferenceAt}; sha256 ${d.sha256} vs ${d.rebuildSha256})`
        : d.reason === 'missing-in-rebuild'
          ? `${d.name}: produced by the first build only`
          : `${d.name}: produced by the rebuild only`,
    )
    .join('; ');
}
