import { createRequire } from 'node:module';
import type pg from 'pg';

// node-postgres loads with the first connection, not at import: every `airlock` call that registers a command
// with a postgres:// option imports this package, and most never connect.
const load = createRequire(import.meta.url);
let loaded: typeof pg | undefined;

export const pgModule = (): typeof pg => (loaded ??= load('pg') as typeof pg);
