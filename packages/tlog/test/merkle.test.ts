import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  decompose,
  hashLeaf,
  MemoryNodeStore,
  MerkleFrontier,
  verifyConsistencyProof,
  verifyInclusionProof,
} from '../src/merkle.js';

// ---- Independent reference: the RFC 6962 §2.1 definitions, written out recursively (memoised on ranges). ----
const sha = (...parts: Buffer[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const refLeaf = (d: Buffer) => sha(Buffer.from([0]), d);
const refNode = (l: Buffer, r: Buffer) => sha(Buffer.from([1]), l, r);
const K = (n: number) => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};

class Reference {
  private readonly memo = new Map<string, Buffer>();
  constructor(readonly leaves: Buffer[]) {}

  /** MTH(D[lo:hi]) */
  mth(lo: number, hi: number): Buffer {
    const n = hi - lo;
    if (n === 0) return sha();
    const key = `${lo}:${hi}`;
    let h = this.memo.get(key);
    if (!h) {
      if (n === 1) h = refLeaf(this.leaves[lo]!);
      else {
        const k = K(n);
        h = refNode(this.mth(lo, lo + k), this.mth(lo + k, hi));
      }
      this.memo.set(key, h);
    }
    return h;
  }

  /** PATH(m, D[lo:hi]) */
  path(m: number, lo: number, hi: number): Buffer[] {
    const n = hi - lo;
    if (n === 1) return [];
    const k = K(n);
    if (m < k) return [...this.path(m, lo, lo + k), this.mth(lo + k, hi)];
    return [...this.path(m - k, lo + k, hi), this.mth(lo, lo + k)];
  }

  /** PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true) */
  proof(m: number, n: number): Buffer[] {
    return this.subproof(m, 0, n, true);
  }

  private subproof(m: number, lo: number, hi: number, b: boolean): Buffer[] {
    const n = hi - lo;
    if (m === n) return b ? [] : [this.mth(lo, hi)];
    const k = K(n);
    if (m <= k) return [...this.subproof(m, lo, lo + k, b), this.mth(lo + k, hi)];
    return [...this.subproof(m - k, lo + k, hi, false), this.mth(lo, lo + k)];
  }
}

const MAX = 300;
const leaves = Array.from({ length: MAX }, (_, i) => Buffer.from(`leaf ${i} ${'x'.repeat(i % 7)}`));
const ref = new Reference(leaves);
const store = new MemoryNodeStore();
for (const l of leaves) store.appendData(l);
const tree = store.tree;
const hex = (bs: Buffer[]) => bs.map((b) => b.toString('hex'));
const flip = (b: Buffer, byte = 0) => {
  const c = Buffer.from(b);
  c[byte] = c[byte]! ^ 0x01;
  return c;
};

describe('RFC 6962 hashing', () => {
  it('hashes leaves and the empty tree as specified', () => {
    expect(hashLeaf(Buffer.from('abc')).toString('hex')).toBe(refLeaf(Buffer.from('abc')).toString('hex'));
    expect(tree.rootAt(0).toString('hex')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('decomposes sizes into perfect subtrees, largest first', () => {
    expect(decompose(0)).toEqual([]);
    expect(decompose(1)).toEqual([{ level: 0, index: 0 }]);
    expect(decompose(6)).toEqual([
      { level: 2, index: 0 },
      { level: 1, index: 2 },
    ]);
    expect(decompose(13)).toEqual([
      { level: 3, index: 0 },
      { level: 2, index: 2 },
      { level: 0, index: 12 },
    ]);
  });

  it('stores at most log2(n)+1 new nodes per append and ~2n in total', () => {
    const s = new MemoryNodeStore();
    const f = MerkleFrontier.empty();
    let total = 0;
    for (let i = 0; i < 1024; i++) {
      const created = f.append(hashLeaf(Buffer.from([i & 0xff, i >> 8])));
      expect(created.length).toBeLessThanOrEqual(Math.floor(Math.log2(i + 1)) + 1);
      total += created.length;
      s.appendLeaf(created[0]!.hash);
    }
    expect(total).toBe(2047);
    expect(f.root().equals(s.root())).toBe(true);
  });
});

describe('roots for every tree size 1..300', () => {
  it('rootAt(n), the frontier root and a reloaded frontier all equal the reference MTH', () => {
    const incremental = new MemoryNodeStore();
    for (let n = 1; n <= MAX; n++) {
      incremental.appendData(leaves[n - 1]!);
      const expected = ref.mth(0, n).toString('hex');
      expect(tree.rootAt(n).toString('hex')).toBe(expected);
      expect(incremental.root().toString('hex')).toBe(expected);
      expect(MerkleFrontier.load(store, n).root().toString('hex')).toBe(expected);
    }
  });
});

describe('inclusion proofs', () => {
  it('match the reference PATH and verify for every (index, size) with size ≤ 300', () => {
    let checked = 0;
    for (let n = 1; n <= MAX; n++) {
      const root = ref.mth(0, n);
      for (let m = 0; m < n; m++) {
        const proof = tree.inclusionProof(m, n);
        expect(hex(proof)).toEqual(hex(ref.path(m, 0, n)));
        expect(verifyInclusionProof(refLeaf(leaves[m]!), m, n, proof, root)).toBe(true);
        checked++;
      }
    }
    expect(checked).toBe((MAX * (MAX + 1)) / 2);
  });

  it('rejects flipped hashes, wrong index, wrong size, wrong leaf, wrong root and bad proof lengths', () => {
    for (let n = 1; n <= 100; n++) {
      const root = ref.mth(0, n);
      for (let m = 0; m < n; m++) {
        const leaf = refLeaf(leaves[m]!);
        const proof = tree.inclusionProof(m, n);
        proof.forEach((_, i) => {
          const bad = [...proof];
          bad[i] = flip(bad[i]!, i % 32);
          expect(verifyInclusionProof(leaf, m, n, bad, root)).toBe(false);
        });
        if (m + 1 < n) expect(verifyInclusionProof(leaf, m + 1, n, proof, root)).toBe(false);
        if (m > 0) expect(verifyInclusionProof(leaf, m - 1, n, proof, root)).toBe(false);
        // A size claim is bound to its root (a checkpoint signs both): this proof is not one for another size's root.
        expect(verifyInclusionProof(leaf, m, n + 1, proof, ref.mth(0, n + 1))).toBe(false);
        if (m < n - 1) expect(verifyInclusionProof(leaf, m, n - 1, proof, ref.mth(0, n - 1))).toBe(false);
        expect(verifyInclusionProof(refLeaf(Buffer.from('other')), m, n, proof, root)).toBe(false);
        expect(verifyInclusionProof(leaf, m, n, proof, flip(root))).toBe(false);
        expect(verifyInclusionProof(leaf, m, n, [...proof, root], root)).toBe(false);
        if (proof.length > 0) expect(verifyInclusionProof(leaf, m, n, proof.slice(0, -1), root)).toBe(false);
      }
      expect(verifyInclusionProof(refLeaf(leaves[0]!), n, n, [], root)).toBe(false);
    }
  });

  it('refuses to build proofs outside the tree', () => {
    expect(() => tree.inclusionProof(5, 5)).toThrow(/not below tree size/);
    expect(() => tree.inclusionProof(-1, 5)).toThrow();
    expect(() => tree.inclusionProof(0, MAX + 1)).toThrow(/missing tree node/);
  });
});

describe('consistency proofs', () => {
  const check = (m: number, n: number) => {
    const proof = tree.consistencyProof(m, n);
    expect(hex(proof)).toEqual(m === 0 || m === n ? [] : hex(ref.proof(m, n)));
    expect(verifyConsistencyProof(m, n, ref.mth(0, m), ref.mth(0, n), proof)).toBe(true);
    return proof;
  };

  it('match the reference PROOF and verify for every 0 ≤ first ≤ second ≤ 64', () => {
    for (let n = 0; n <= 64; n++) for (let m = 0; m <= n; m++) check(m, n);
  });

  it('match and verify for sampled pairs up to 300 (every second size, several first sizes each)', () => {
    for (let n = 65; n <= MAX; n++) {
      const firsts = new Set(
        [1, 2, 3, n >> 1, n - 1, n, (n * 7919) % n || 1, 64, 128, 256].filter((m) => m >= 1 && m <= n),
      );
      for (const m of firsts) check(m, n);
    }
  });

  it('rejects flipped hashes, wrong sizes and wrong roots', () => {
    for (let n = 2; n <= 80; n++) {
      for (let m = 1; m < n; m++) {
        const proof = tree.consistencyProof(m, n);
        const r1 = ref.mth(0, m);
        const r2 = ref.mth(0, n);
        proof.forEach((_, i) => {
          const bad = [...proof];
          bad[i] = flip(bad[i]!, (i * 5) % 32);
          expect(verifyConsistencyProof(m, n, r1, r2, bad)).toBe(false);
        });
        expect(verifyConsistencyProof(m, n, flip(r1), r2, proof)).toBe(false);
        expect(verifyConsistencyProof(m, n, r1, flip(r2), proof)).toBe(false);
        expect(verifyConsistencyProof(m, n + 1, r1, ref.mth(0, Math.min(n + 1, MAX)), proof)).toBe(false);
        if (m > 1) expect(verifyConsistencyProof(m - 1, n, ref.mth(0, m - 1), r2, proof)).toBe(false);
        expect(verifyConsistencyProof(m, n, r1, r2, [])).toBe(false);
        expect(verifyConsistencyProof(m, n, r1, r2, [...proof, r2])).toBe(false);
        // A different history of the same sizes does not verify against this proof.
        expect(verifyConsistencyProof(m, n, refLeaf(Buffer.from('fork')), r2, proof)).toBe(false);
      }
    }
  });

  it('handles the edge cases: equal sizes, empty first tree, first > second', () => {
    const r = ref.mth(0, 10);
    expect(verifyConsistencyProof(10, 10, r, r, [])).toBe(true);
    expect(verifyConsistencyProof(10, 10, r, flip(r), [])).toBe(false);
    expect(verifyConsistencyProof(10, 10, r, r, [r])).toBe(false);
    expect(verifyConsistencyProof(0, 10, sha(), r, [])).toBe(true);
    expect(verifyConsistencyProof(11, 10, r, r, [])).toBe(false);
    expect(() => tree.consistencyProof(11, 10)).toThrow(/larger than/);
  });
});
