import { createHash, timingSafeEqual } from 'node:crypto';
import { TlogError } from './errors.js';

/**
 * RFC 6962 Merkle tree (https://www.rfc-editor.org/rfc/rfc6962#section-2.1, same hashing in RFC 9162 §2.1).
 *
 * Storage model: the hash of every *perfect* subtree is persisted once, when it completes. Node (level, index)
 * covers leaves [index·2^level, (index+1)·2^level); level 0 holds the leaf hashes. An append adds the leaf and the
 * ≤ log2(n) perfect subtrees it completes (the `MerkleFrontier` knows which), so nothing is ever recomputed.
 * Any tree size's root and any proof are folded from O(log n) such nodes: a non-perfect right edge is the
 * RFC 6962 split of its range into perfect subtrees.
 */

export const HASH_SIZE = 32;
const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);
const EMPTY_ROOT = createHash('sha256').digest();

/** MTH({d}) = SHA-256(0x00 ‖ d). */
export function hashLeaf(data: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(data).digest();
}

/** SHA-256(0x01 ‖ left ‖ right). */
export function hashChildren(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** MTH({}) = SHA-256 of the empty string. */
export function emptyRoot(): Buffer {
  return Buffer.from(EMPTY_ROOT);
}

/** Read access to persisted perfect-subtree hashes. Must throw (not return garbage) when a node is missing. */
export interface NodeReader {
  getNode(level: number, index: number): Buffer;
}

/** A perfect-subtree hash to persist. */
export interface TreeNode {
  level: number;
  index: number;
  hash: Buffer;
}

function assertSize(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new TlogError('TLOG_INVALID_TREE_SIZE', `${what} must be a non-negative safe integer, got ${n}`);
}

/** Largest power of two strictly less than n (n ≥ 2): the RFC 6962 split point k. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  let p = 1;
  while (p < n) p *= 2;
  return p === n;
}

function log2Exact(n: number): number {
  let level = 0;
  for (let p = 1; p < n; p *= 2) level++;
  return level;
}

/**
 * The perfect subtrees (level, index) that the binary decomposition of `size` splits [0, size) into, largest
 * (leftmost) first. MTH(D[0:size]) folds them right to left.
 */
export function decompose(size: number): Array<{ level: number; index: number }> {
  assertSize('tree size', size);
  const out: Array<{ level: number; index: number }> = [];
  let top = 1;
  let level = 0;
  while (top * 2 <= size) {
    top *= 2;
    level++;
  }
  let start = 0;
  for (let span = top; span >= 1 && start < size; span /= 2, level--) {
    if (size - start >= span) {
      out.push({ level, index: start / span });
      start += span;
    }
  }
  return out;
}

/**
 * The right edge of the tree — the hashes of the perfect subtrees in the decomposition of `size`. This is all an
 * append needs: the new leaf merges with equal-level subtrees on the edge, completing new perfect subtrees.
 */
export class MerkleFrontier {
  private constructor(
    private readonly edge: TreeNode[],
    private count: number,
  ) {}

  static empty(): MerkleFrontier {
    return new MerkleFrontier([], 0);
  }

  /** The frontier from the hashes of `decompose(size)` (largest first). */
  static fromEdge(edge: readonly TreeNode[], size: number): MerkleFrontier {
    return new MerkleFrontier(
      edge.map((n) => ({ ...n })),
      size,
    );
  }

  /** Rebuilds the frontier of a stored tree with O(log n) node reads. */
  static load(reader: NodeReader, size: number): MerkleFrontier {
    const edge = decompose(size).map(({ level, index }) => ({ level, index, hash: reader.getNode(level, index) }));
    return new MerkleFrontier(edge, size);
  }

  get size(): number {
    return this.count;
  }

  clone(): MerkleFrontier {
    return new MerkleFrontier(
      this.edge.map((n) => ({ ...n })),
      this.count,
    );
  }

  /** Appends one leaf hash; returns the nodes to persist: the leaf (level 0) and every subtree it completes. */
  append(leafHash: Buffer): TreeNode[] {
    if (leafHash.length !== HASH_SIZE) throw new TlogError('TLOG_STORE_CORRUPT', 'leaf hash must be 32 bytes');
    const created: TreeNode[] = [{ level: 0, index: this.count, hash: leafHash }];
    let node: TreeNode = created[0]!;
    this.count++;
    while (this.edge.length > 0 && this.edge[this.edge.length - 1]!.level === node.level) {
      const left = this.edge.pop()!;
      node = { level: node.level + 1, index: left.index / 2, hash: hashChildren(left.hash, node.hash) };
      created.push(node);
    }
    this.edge.push(node);
    return created;
  }

  /** MTH of the whole tree. */
  root(): Buffer {
    if (this.edge.length === 0) return emptyRoot();
    let acc = this.edge[this.edge.length - 1]!.hash;
    for (let i = this.edge.length - 2; i >= 0; i--) acc = hashChildren(this.edge[i]!.hash, acc);
    return acc;
  }
}

/** Coordinates of a persisted perfect subtree: leaves [index·2^level, (index+1)·2^level). */
export interface NodeCoord {
  level: number;
  index: number;
}

/**
 * A hash to compute: the perfect subtrees covering one range of the RFC 6962 recursion, left to right; the range's
 * MTH folds them right to left. A proof is a list of such ranges, so a reader can fetch every node a proof (or many
 * proofs) needs in one round trip and fold afterwards.
 */
export type RangePlan = NodeCoord[];

/** The perfect subtrees of [start, start+count) when start is a multiple of the RFC 6962 split (as in proofs). */
function rangePlan(start: number, count: number): RangePlan {
  const out: RangePlan = [];
  while (count > 0) {
    const span = isPowerOfTwo(count) ? count : splitPoint(count);
    if (start % span !== 0) throw new TlogError('TLOG_STORE_CORRUPT', `unaligned subtree [${start}, ${start + span})`);
    out.push({ level: log2Exact(span), index: start / span });
    start += span;
    count -= span;
  }
  return out;
}

/** MTH of a range from its perfect subtrees' hashes (left to right); the empty range is MTH({}). */
export function foldRange(hashes: readonly Buffer[]): Buffer {
  if (hashes.length === 0) return emptyRoot();
  let acc = hashes[hashes.length - 1]!;
  for (let i = hashes.length - 2; i >= 0; i--) acc = hashChildren(hashes[i]!, acc);
  return acc;
}

/** The root of the tree of `size` as one range. */
export function rootPlan(size: number): RangePlan {
  assertSize('tree size', size);
  return decompose(size);
}

/** PATH(index, D[0:size]) — RFC 6962 §2.1.1 / RFC 9162 §2.1.3.1 — as ranges, ordered leaf → root. */
export function inclusionPlan(index: number, size: number): RangePlan[] {
  assertSize('tree size', size);
  assertSize('leaf index', index);
  if (index >= size)
    throw new TlogError('TLOG_INVALID_TREE_SIZE', `leaf index ${index} is not below tree size ${size}`);
  const out: RangePlan[] = [];
  const path = (m: number, start: number, n: number): void => {
    if (n === 1) return;
    const k = splitPoint(n);
    if (m < k) {
      path(m, start, k);
      out.push(rangePlan(start + k, n - k));
    } else {
      path(m - k, start + k, n - k);
      out.push(rangePlan(start, k));
    }
  };
  path(index, 0, size);
  return out;
}

/** PROOF(first, D[0:second]) — RFC 6962 §2.1.2 / RFC 9162 §2.1.4.1 — as ranges. Empty when first is 0 or second. */
export function consistencyPlan(first: number, second: number): RangePlan[] {
  assertSize('first size', first);
  assertSize('second size', second);
  if (first > second)
    throw new TlogError('TLOG_INVALID_TREE_SIZE', `first size ${first} is larger than second size ${second}`);
  const out: RangePlan[] = [];
  if (first === 0 || first === second) return out;
  const subproof = (m: number, start: number, n: number, whole: boolean): void => {
    if (m === n) {
      if (!whole) out.push(rangePlan(start, n));
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      subproof(m, start, k, whole);
      out.push(rangePlan(start + k, n - k));
    } else {
      subproof(m - k, start + k, n - k, false);
      out.push(rangePlan(start, k));
    }
  };
  subproof(first, 0, second, true);
  return out;
}

/** Batched read access to persisted perfect-subtree hashes (a database): one call per proof, or per batch of proofs. */
export interface AsyncNodeReader {
  /** The hashes of `coords`, in order. Must reject (not return garbage) when a node is missing. */
  getNodes(coords: readonly NodeCoord[]): Promise<Buffer[]>;
}

/** Resolves several proofs' plans with ONE `getNodes` call (coordinates deduplicated); returns their hashes. */
export async function resolvePlans(reader: AsyncNodeReader, proofs: readonly RangePlan[][]): Promise<Buffer[][]> {
  const keyOf = (c: NodeCoord) => `${c.level}:${c.index}`;
  const unique = new Map<string, NodeCoord>();
  for (const proof of proofs) for (const range of proof) for (const c of range) unique.set(keyOf(c), c);
  const coords = [...unique.values()];
  const hashes = coords.length > 0 ? await reader.getNodes(coords) : [];
  const byKey = new Map(coords.map((c, i) => [keyOf(c), hashes[i]!]));
  return proofs.map((proof) => proof.map((range) => foldRange(range.map((c) => byKey.get(keyOf(c))!))));
}

/** Roots and proofs for any tree size ≤ the stored size, from persisted perfect-subtree hashes (synchronous reader). */
export class MerkleTree {
  constructor(private readonly reader: NodeReader) {}

  private resolve(range: RangePlan): Buffer {
    return foldRange(range.map((c) => this.reader.getNode(c.level, c.index)));
  }

  /** MTH(D[0:size]). */
  rootAt(size: number): Buffer {
    return this.resolve(rootPlan(size));
  }

  /** PATH(index, D[0:size]); hashes ordered leaf → root. */
  inclusionProof(index: number, size: number): Buffer[] {
    return inclusionPlan(index, size).map((r) => this.resolve(r));
  }

  /** PROOF(first, D[0:second]). Empty when first is 0 or equals second. */
  consistencyProof(first: number, second: number): Buffer[] {
    return consistencyPlan(first, second).map((r) => this.resolve(r));
  }
}

/** An in-memory node store (clients, tests, tools): append leaves, then use `tree` for roots and proofs. */
export class MemoryNodeStore implements NodeReader {
  private readonly nodes = new Map<string, Buffer>();
  private readonly frontier = MerkleFrontier.empty();
  readonly tree = new MerkleTree(this);

  get size(): number {
    return this.frontier.size;
  }

  appendLeaf(leafHash: Buffer): void {
    for (const n of this.frontier.append(leafHash)) this.nodes.set(`${n.level}:${n.index}`, n.hash);
  }

  appendData(data: Uint8Array): void {
    this.appendLeaf(hashLeaf(data));
  }

  root(): Buffer {
    return this.frontier.root();
  }

  getNode(level: number, index: number): Buffer {
    const h = this.nodes.get(`${level}:${index}`);
    if (!h) throw new TlogError('TLOG_STORE_CORRUPT', `missing tree node (level ${level}, index ${index})`);
    return h;
  }
}

// ---- client-side verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ----

function half(n: number): number {
  return Math.floor(n / 2);
}

function odd(n: number): boolean {
  return n % 2 === 1;
}

function isHash(h: unknown): h is Uint8Array {
  return h instanceof Uint8Array && h.length === HASH_SIZE;
}

function sameHash(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The root an inclusion proof implies for `leafHash` at `index` in a tree of `treeSize`, or undefined if the proof
 * has the wrong shape (RFC 9162 §2.1.3.2 steps 1–4).
 */
export function rootFromInclusionProof(
  leafHash: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
): Buffer | undefined {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(treeSize) || index < 0 || index >= treeSize)
    return undefined;
  if (!isHash(leafHash) || !proof.every(isHash)) return undefined;
  let fn = index;
  let sn = treeSize - 1;
  let r: Buffer = Buffer.from(leafHash);
  for (const p of proof) {
    if (sn === 0) return undefined;
    if (odd(fn) || fn === sn) {
      r = hashChildren(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = hashChildren(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? r : undefined;
}

/** True when `proof` proves that `leafHash` is leaf `index` of the tree of `treeSize` with root `rootHash`. */
export function verifyInclusionProof(
  leafHash: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
  rootHash: Uint8Array,
): boolean {
  const r = rootFromInclusionProof(leafHash, index, treeSize, proof);
  return r !== undefined && isHash(rootHash) && sameHash(r, rootHash);
}

/**
 * True when `proof` proves the tree of `firstSize` (root `firstRoot`) is a prefix of the tree of `secondSize`
 * (root `secondRoot`). Equal sizes need an empty proof and equal roots; the empty tree is a prefix of any tree.
 */
export function verifyConsistencyProof(
  firstSize: number,
  secondSize: number,
  firstRoot: Uint8Array,
  secondRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!Number.isSafeInteger(firstSize) || !Number.isSafeInteger(secondSize) || firstSize < 0 || firstSize > secondSize)
    return false;
  if (!isHash(firstRoot) || !isHash(secondRoot) || !proof.every(isHash)) return false;
  if (firstSize === secondSize) return proof.length === 0 && sameHash(firstRoot, secondRoot);
  if (firstSize === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(firstSize) ? [firstRoot, ...proof] : [...proof];
  let fn = firstSize - 1;
  let sn = secondSize - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr: Buffer = Buffer.from(path[0]!);
  let sr: Buffer = Buffer.from(path[0]!);
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = hashChildren(c, fr);
      sr = hashChildren(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = hashChildren(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && sameHash(fr, firstRoot) && sameHash(sr, secondRoot);
}
