-- Transparency log metadata (same model as packages/tlog's SQLite storage): one log per database.
CREATE TABLE tlog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tlog_entries (
  log_index BIGINT PRIMARY KEY,
  leaf_hash BYTEA NOT NULL UNIQUE,
  body BYTEA NOT NULL,
  integrated_time BIGINT NOT NULL,
  kind TEXT NOT NULL,
  api_version TEXT NOT NULL,
  set_sig BYTEA NOT NULL
);
-- Perfect-subtree hashes above the leaves (level >= 1); level 0 are tlog_entries.leaf_hash.
CREATE TABLE tlog_nodes (level INTEGER NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (level, idx));
CREATE TABLE tlog_search (key TEXT NOT NULL, log_index BIGINT NOT NULL, PRIMARY KEY (key, log_index));
