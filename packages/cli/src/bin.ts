#!/usr/bin/env node
import { fail } from './output.js';
import { programFor } from './program-lazy.js';
import { wantsJson } from './program-base.js';

// Errors an action did not catch get the same reporting and exit classification as caught ones.
programFor(process.argv)
  .then((program) => program.parseAsync(process.argv))
  .catch((err: unknown) => fail(wantsJson(process.argv) ? { json: true } : {}, err));
