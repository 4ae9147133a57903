// Prints the store's head snapshot and per-table row counts (a child process, so the test never holds the
// store's SQLite database open while the CLI imports into it).
import Database from 'better-sqlite3';
import { join } from 'node:path';

const db = new Database(join(process.argv[2], 'index.sqlite'), { readonly: true, fileMustExist: true });
const tables = db
  .prepare("select name from sqlite_master where type = 'table' order by name")
  .all()
  .map((r) => r.name);
const counts = Object.fromEntries(tables.map((t) => [t, db.prepare(`select count(*) as n from "${t}"`).get().n]));
process.stdout.write(JSON.stringify({ counts }));
db.close();
