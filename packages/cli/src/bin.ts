#!/usr/bin/env node
import { fail } from './output.js';
import { buildProgram, wantsJson } from './program.js';

// Errors an action did not catch get the same reporting and exit classification as caught ones.
buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => fail(wantsJson(process.argv) ? { json: true } : {}, err));
