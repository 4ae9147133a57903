import { TlogError } from '../errors.js';

/**
 * The C2SP tlog-witness `add-checkpoint` request body:
 *
 *   old <size>\n
 *   <base64 consistency proof hash>\n   (zero or more)
 *   \n
 *   <signed checkpoint note>
 */
export interface AddCheckpointRequest {
  oldSize: number;
  proof: Buffer[];
  checkpoint: string;
}

/** Content type of a 409 answer: the witness's latest size for that log. */
export const TLOG_SIZE_TYPE = 'text/x.tlog.size';
export const MAX_ADD_CHECKPOINT_BYTES = 128 * 1024;
const MAX_PROOF_HASHES = 64;

function badRequest(message: string): never {
  throw new TlogError('TLOG_BAD_REQUEST', `add-checkpoint: ${message}`);
}

export function formatAddCheckpoint(req: AddCheckpointRequest): string {
  const proof = req.proof.map((h) => `${h.toString('base64')}\n`).join('');
  return `old ${req.oldSize}\n${proof}\n${req.checkpoint}`;
}

export function parseAddCheckpoint(body: string): AddCheckpointRequest {
  const split = body.indexOf('\n\n');
  if (split < 0) badRequest('no blank line before the checkpoint');
  const head = body.slice(0, split).split('\n');
  const m = /^old (0|[1-9][0-9]{0,15})$/.exec(head[0] ?? '');
  if (!m || !Number.isSafeInteger(Number(m[1]))) badRequest("first line is not 'old <size>'");
  const proofLines = head.slice(1);
  if (proofLines.length > MAX_PROOF_HASHES) badRequest('too many proof hashes');
  const proof = proofLines.map((l) => {
    if (!/^[A-Za-z0-9+/]{43}=$/.test(l)) badRequest('a proof line is not base64 of 32 bytes');
    return Buffer.from(l, 'base64');
  });
  return { oldSize: Number(m[1]), proof, checkpoint: body.slice(split + 2) };
}
