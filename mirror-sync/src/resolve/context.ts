import type { BlobStore, StoredBlob } from '../blob-store.js';
import type { HttpClient } from '../http/http-client.js';
import type { BazelEntryMetadata, Ecosystem, NixEntryMetadata, NpmEntryMetadata, PypiEntryMetadata } from '../types.js';

/** What resolvers share for one run. */
export interface ResolveContext {
  http: HttpClient;
  store: BlobStore;
  /** Appended to the run's notes (things skipped, trust-on-first-use, yanked files…). */
  note: (msg: string) => void;
  /** A new unit of work became known (for the progress total). */
  planned: (n: number) => void;
  /** A unit of work finished. */
  done: () => void;
  maxBlobBytes: number;
  maxMetadataBytes: number;
}

/** A manifest entry before sizes/digests are copied from its blob. */
export type EntryDraft =
  | DraftOf<'npm', NpmEntryMetadata>
  | DraftOf<'pypi', PypiEntryMetadata>
  | DraftOf<'bazel', BazelEntryMetadata>
  | DraftOf<'nix', NixEntryMetadata>
  | DraftOf<'generic', Record<string, never>>;

interface DraftOf<E extends Ecosystem, M> {
  ecosystem: E;
  name: string;
  version: string | null;
  filename: string;
  urls: string[];
  blob: StoredBlob;
  purl: string;
  metadata: M;
}

/** One unit that can fail on its own (one package, one requirement, one archive). */
export interface EntryTask {
  label: string;
  run: () => Promise<EntryDraft[]>;
}
