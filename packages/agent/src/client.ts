import net from 'node:net';
import { AgentError, type AgentErrorCode } from './errors.js';

/** Codes an agent refusal may carry through to the caller; any other (issuer-side) code is a request problem. */
const REFUSAL_CODES = new Set<string>([
  'AGENT_NO_MATCH',
  'AGENT_PEER_CHANGED',
  'AGENT_PEER_UNKNOWN',
  'AGENT_REQUEST_INVALID',
]);
import { MAX_RESPONSE_BYTES, type AgentResponse, type AgentTokenRequest } from './protocol.js';

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
export function requestAgentToken(
  socketPath: string,
  request: AgentTokenRequest = {},
  options: { timeoutMs?: number } = {},
): Promise<AgentToken> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined, value?: AgentToken): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    const unavailable = (why: string, cause?: unknown): AgentError =>
      new AgentError('AGENT_UNAVAILABLE', `identity agent at ${socketPath}: ${why}`, cause ? { cause } : {});
    const timeoutMs = options.timeoutMs ?? 10_000;
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

function parseResponse(line: string): AgentToken {
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
  if (
    r.ok === true &&
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
