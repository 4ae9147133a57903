// PostgreSQL backends (pg driver, versioned migrations in ../migrations): the mirror index and snapshot history,
// and the transparency log's metadata (LogStorage); SQLite stays the embedded default.
export * from './errors.js';
export { isPostgresUrl, parsePgUrl, redact, type PgTarget } from './connection.js';
export { migrate, loadMigrations, MIGRATIONS_DIR, type Migration } from './migrate.js';
export { PgMirrorIndex, MIRROR_CHANNEL, DEFAULT_POLL_MS, type PgMirrorIndexOptions } from './mirror-index.js';
export { PgLogStorage } from './log-storage.js';
export { acquirePgImportLock, type PgImportLock } from './import-lock.js';
