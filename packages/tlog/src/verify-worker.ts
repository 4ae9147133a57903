/**
 * Worker thread of `VerifierPool`: verifies and canonicalizes batches of proposed entries (`prepareEntry`) off the
 * log's event loop. One message in = one batch of proposals; one message out = their results, in order.
 */
import { parentPort } from 'node:worker_threads';
import { TlogError } from './errors.js';
import { prepareFor, type ProposalApi, type VerifyReply, type VerifyRequest, type WireResult } from './verify-pool.js';

function prepareOne({ api, proposal }: { api: ProposalApi; proposal: unknown }): WireResult {
  try {
    return { ok: true, entry: prepareFor(api, proposal) };
  } catch (err) {
    if (err instanceof TlogError)
      return { ok: false, error: { code: err.code, message: err.message, details: err.details } };
    // Not a verdict on the entry: the pool reports it as an internal error.
    return { ok: false, error: { message: 'verifier failed' } };
  }
}

parentPort!.on('message', (req: VerifyRequest) => {
  const reply: VerifyReply = { id: req.id, results: req.proposals.map(prepareOne) };
  parentPort!.postMessage(reply);
});
