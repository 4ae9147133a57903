export * from './errors.js';
export * from './entries.js';
export * from './protocol.js';
export * from './node-attestation.js';
export { peerNative, socketFd, type PeerNative } from './native.js';
export { inspectPeer, pinPeer, unpin, type PeerIdentity, type PinnedPeer, type InspectHook } from './peer.js';
export {
  startAgent,
  type StartAgentOptions,
  type RunningAgent,
  type AgentLogRecord,
  type AgentTokenSigner,
  type AgentSvidSigner,
} from './server.js';
export { requestAgentToken, requestAgentX509Svid, type AgentToken } from './client.js';
