-- The mirror index (same model as the embedded SQLite index in packages/cas/src/mirror-index.ts): entries and
-- blobs carry the sequence of the snapshot that added them and readers only see rows at or below the head, so a
-- snapshot becomes visible in the transaction that moves the head.
CREATE TABLE mirror_stores (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE mirror_snapshots (
  sequence BIGINT PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  previous TEXT,
  created_at TEXT NOT NULL,
  imported_at TEXT NOT NULL,
  gap_allowed BOOLEAN NOT NULL DEFAULT false,
  manifest TEXT NOT NULL,
  signed_bundles TEXT NOT NULL
);
CREATE TABLE mirror_head (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  sequence BIGINT NOT NULL REFERENCES mirror_snapshots (sequence)
);
-- Every state change takes a new state_version, so replicas fetch only what changed since they last looked.
CREATE SEQUENCE mirror_blob_state_version;
CREATE TABLE mirror_blobs (
  sha256 TEXT PRIMARY KEY,
  size BIGINT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('ok', 'quarantined')),
  added_in BIGINT NOT NULL REFERENCES mirror_snapshots (sequence),
  state_version BIGINT NOT NULL DEFAULT nextval('mirror_blob_state_version')
);
CREATE INDEX mirror_blobs_by_state_version ON mirror_blobs (state_version);
CREATE TABLE mirror_snapshot_blobs (
  sequence BIGINT NOT NULL REFERENCES mirror_snapshots (sequence),
  sha256 TEXT NOT NULL REFERENCES mirror_blobs (sha256),
  PRIMARY KEY (sequence, sha256)
);
CREATE TABLE mirror_entries (
  id BIGSERIAL PRIMARY KEY,
  ecosystem TEXT NOT NULL,
  name TEXT NOT NULL,
  version TEXT,
  filename TEXT NOT NULL,
  sha256 TEXT NOT NULL REFERENCES mirror_blobs (sha256),
  size BIGINT NOT NULL,
  sha512 TEXT,
  sha1 TEXT,
  digests TEXT NOT NULL,
  purl TEXT,
  urls TEXT NOT NULL,
  metadata TEXT NOT NULL,
  added_in BIGINT NOT NULL REFERENCES mirror_snapshots (sequence)
);
CREATE UNIQUE INDEX mirror_entries_identity ON mirror_entries (ecosystem, name, coalesce(version, ''), filename, sha256);
CREATE INDEX mirror_entries_added_in ON mirror_entries (added_in, id);
