import { RunnerError } from './errors.js';
import type { BuildSpec } from './spec.js';

/**
 * Which mirrors exist is the operator's decision (`airlock run --mirror/--mirror-socket`, `RunOptions.mirrors`);
 * a build spec may only pick one of them, by name or by its exact URL. A spec can never name a socket or a host
 * of its own (a Docker socket, an internal service): the bridge would carry the build's requests there.
 */
export interface MirrorConfig {
  /** What a spec selects it by (`mirror: { name }`). */
  name?: string;
  /** http://host:port[/path] (bridged over TCP), or only the path prefix when `unixSocket` is given. */
  url?: string;
  /** The mirror's UNIX socket on the host. */
  unixSocket?: string;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The operator's mirrors: the single `mirrorUrl`/`mirrorUnixSocket` pair (if any) first, then `mirrors`. */
export function approvedMirrors(options: {
  mirrorUrl?: string;
  mirrorUnixSocket?: string;
  mirrors?: readonly MirrorConfig[];
}): MirrorConfig[] {
  const list: MirrorConfig[] = [];
  if (options.mirrorUrl !== undefined || options.mirrorUnixSocket !== undefined)
    list.push({
      ...(options.mirrorUrl !== undefined ? { url: options.mirrorUrl } : {}),
      ...(options.mirrorUnixSocket !== undefined ? { unixSocket: options.mirrorUnixSocket } : {}),
    });
  list.push(...(options.mirrors ?? []));
  const names = new Set<string>();
  for (const m of list) {
    if (m.url === undefined && m.unixSocket === undefined)
      throw new RunnerError('RUNNER_SPEC_INVALID', `mirror ${m.name ?? '(unnamed)'}: needs a URL or a UNIX socket`);
    if (m.name === undefined) continue;
    if (!NAME_RE.test(m.name))
      throw new RunnerError('RUNNER_SPEC_INVALID', `mirror name '${m.name.slice(0, 80)}' is not a valid name`);
    if (names.has(m.name)) throw new RunnerError('RUNNER_SPEC_INVALID', `mirror name '${m.name}' is given twice`);
    names.add(m.name);
  }
  return list;
}

/**
 * The mirror this build uses: the one the spec selects among the approved ones, else the first approved one,
 * else none. A spec selecting anything else is RUNNER_SPEC_INVALID (exit 2).
 */
export function selectMirror(spec: BuildSpec, approved: readonly MirrorConfig[]): MirrorConfig | undefined {
  const wanted = spec.mirror;
  if (!wanted) return approved[0];
  const offered = describeApproved(approved);
  if (wanted.name !== undefined) {
    const found = approved.find((m) => m.name === wanted.name);
    if (found) return found;
    throw new RunnerError(
      'RUNNER_SPEC_INVALID',
      `mirror.name: '${wanted.name}' is not a mirror the operator approved (${offered})`,
    );
  }
  const url = wanted.url ?? '';
  const found = approved.find((m) => m.url !== undefined && sameUrl(m.url, url));
  if (found) return found;
  throw new RunnerError(
    'RUNNER_SPEC_INVALID',
    `mirror.url: '${url}' is not a mirror the operator approved (${offered})`,
  );
}

function sameUrl(a: string, b: string): boolean {
  return a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}

function describeApproved(approved: readonly MirrorConfig[]): string {
  if (approved.length === 0) return 'none was given: airlock run --mirror URL or --mirror-socket PATH';
  return `approved: ${approved.map((m) => m.name ?? m.url ?? 'the --mirror-socket mirror').join(', ')}`;
}
