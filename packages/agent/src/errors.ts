import { AirlockError } from '@airlock/core';

/** Failure codes of the workload attestation agent and its client. */
export type AgentErrorCode =
  | 'AGENT_CONFIG_INVALID' // bad agent options (socket path, TTL, issuer)
  | 'AGENT_ENTRIES_INVALID' // the registration entries file is malformed
  | 'AGENT_NATIVE_UNAVAILABLE' // the SO_PEERCRED/pidfd addon is not built or not loadable
  | 'AGENT_NODE_ATTESTATION_FAILED' // the host could not prove itself: the agent serves nothing
  | 'AGENT_PEER_UNKNOWN' // the caller could not be inspected (/proc unreadable, exited before inspection)
  | 'AGENT_PEER_CHANGED' // the caller exited, was replaced (pid reuse) or exec'd while being inspected
  | 'AGENT_NO_MATCH' // the caller matches no registration entry (or not the one it asked for)
  | 'AGENT_REQUEST_INVALID' // malformed request line
  | 'AGENT_UNAVAILABLE' // client: the agent socket does not answer, or closed without an answer
  | 'AGENT_BAD_RESPONSE'; // client: the agent's answer is not a well-formed response

export class AgentError extends AirlockError<AgentErrorCode> {}
