#!/usr/bin/env node
// npm links package bins at install time, before `npm run build` has written dist/, and skips a bin whose file
// is missing: so the linked bin is this committed launcher, which loads the built CLI.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/bin.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write(`airlock: the CLI is not built yet (${cli.pathname} is missing): run \`npm run build\`\n`);
  process.exit(1);
}
await import(cli.href);
