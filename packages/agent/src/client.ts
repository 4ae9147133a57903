import net from 'node:net';
import { parseSpiffeId, splitDerCertificates, type X509Svid } from '@airlock/identity';
import { AgentError, type AgentErrorCode } from './errors.js';
import { MAX_RESPONSE_BYTES, type AgentResponse, type AgentTokenRequest } from './protocol.js';

/** Codes an agent refusal may carry through to the caller; any other (issuer-side) code is a request problem. */
const REFUSAL_CODES = new Set<string>([
  'AGENT_NO_MATCH',
  'AGENT_PEER_CHANGED',
  'AGENT_PEER_UNKNOWN',
  'AGENT_REQUEST_INVALID',
]);

export interface AgentToken {
  token: string;
  spiffeId: string;
  expiresAt: string;
  /** Present when the request asked for a build quote and the agent's node is attested. */
  buildQuote?: unknown;
}

/**
 * Asks the agent on `socketPath` for this process's token. A refusal throws the agent's code (AGENT_NO_MATCH,
 * AGENT_PEER_CHANGED, …); no answer at all (socket missing, agent down or killed mid-request) throws
 * AGENT_UNAVAILABLE. A partial answer is never accepted.
 */
export async function requestAgentToken(
  socketPath: string,
  request: AgentTokenRequest = {},
  options: { timeoutMs?: number } = {},
): Promise<AgentToken> {
  const r = await askAgent(socketPath, request, options.timeoutMs); // no kind: older agents took no such field
  if (
    r.ok === true &&
    !('kind' in r) &&
    typeof r.token === 'string' &&
    typeof r.spiffeId === 'string' &&
    typeof r.expiresAt === 'string'
  ) {
    return {
      token: r.token,
      spiffeId: r.spiffeId,
      expiresAt: r.expiresAt,
      ...(r.buildQuote !== undefined ? { buildQuote: r.buildQuote } : {}),
    };
  }
  throw new AgentError('AGENT_BAD_RESPONSE', 'the agent answer is neither a token nor a refusal');
}

/**
 * Asks the agent for this process's X.509 SVID (the Workload API's X509SVIDResponse, first SVID). Same refusals
 * and AGENT_UNAVAILABLE as for tokens; an answer that is not a well-formed SVID is AGENT_BAD_RESPONSE.
 */
export async function requestAgentX509Svid(
  socketPath: string,
  request: Omit<AgentTokenRequest, 'kind' | 'audience'> = {},
  options: { timeoutMs?: number } = {},
): Promise<X509Svid> {
  const r = await askAgent(socketPath, { ...request, kind: 'x509-svid' }, options.timeoutMs);
  const svid =
    r.ok === true && 'kind' in r && r.kind === 'x509-svid' && Array.isArray(r.svids) ? r.svids[0] : undefined;
  const bad = (why: string): AgentError =>
    new AgentError('AGENT_BAD_RESPONSE', `the agent's X.509 SVID answer: ${why}`);
  if (!svid || typeof svid.x509_svid !== 'string' || typeof svid.bundle !== 'string') throw bad('no SVID');
  if (typeof svid.expires_at !== 'number') throw bad('no expiry');
  try {
    parseSpiffeId(svid.spiffe_id);
    const out: X509Svid = {
      spiffe_id: svid.spiffe_id,
      x509_svid: Buffer.from(svid.x509_svid, 'base64'),
      ...(typeof svid.x509_svid_key === 'string' ? { x509_svid_key: Buffer.from(svid.x509_svid_key, 'base64') } : {}),
      bundle: Buffer.from(svid.bundle, 'base64'),
      hint: typeof svid.hint === 'string' ? svid.hint : '',
      expires_at: svid.expires_at,
    };
    if (splitDerCertificates(out.x509_svid).length === 0 || splitDerCertificates(out.bundle).length === 0)
      throw new Error('empty certificate chain or bundle');
    return out;
  } catch (err) {
    throw bad((err as Error).message);
  }
}

/** One request line out, one response line back; refusals thrown with the agent's code. */
function askAgent(socketPath: string, request: AgentTokenRequest, timeoutMs = 10_000): Promise<AgentResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined, value?: AgentResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    const unavailable = (why: string, cause?: unknown): AgentError =>
      new AgentError('AGENT_UNAVAILABLE', `identity agent at ${socketPath}: ${why}`, cause ? { cause } : {});
    const timer = setTimeout(() => finish(unavailable(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > MAX_RESPONSE_BYTES) finish(new AgentError('AGENT_BAD_RESPONSE', 'agent answer too large'));
      const nl = buf.indexOf(0x0a);
      if (nl >= 0) {
        try {
          finish(undefined, parseResponse(buf.subarray(0, nl).toString('utf8')));
        } catch (err) {
          finish(err as Error);
        }
      }
    });
    socket.once('error', (err) => finish(unavailable(err.message, err)));
    socket.once('close', () => finish(unavailable('the connection closed without an answer')));
  });
}

function parseResponse(line: string): AgentResponse {
  let r: AgentResponse;
  try {
    r = JSON.parse(line) as AgentResponse;
  } catch {
    throw new AgentError('AGENT_BAD_RESPONSE', 'the agent answer is not JSON');
  }
  if (r.ok === false && typeof r.error?.code === 'string' && typeof r.error.message === 'string') {
    const code = REFUSAL_CODES.has(r.error.code) ? (r.error.code as AgentErrorCode) : 'AGENT_REQUEST_INVALID';
    throw new AgentError(code, `identity agent refused: ${r.error.message}`, {
      details: { agentCode: r.error.code },
    });
  }
  if (r.ok !== true) throw new AgentError('AGENT_BAD_RESPONSE', 'the agent answer is neither a token nor a refusal');
  return r;
}
