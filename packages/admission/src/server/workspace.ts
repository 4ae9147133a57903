import type { IncomingMessage, ServerResponse } from 'node:http';
import { realpath } from 'node:fs/promises';
import { isAbsolute, join, normalize, sep } from 'node:path';
import type { AdmissionController, WorkspaceRequest, WorkspaceVerdict } from '../types.js';
import { parseWorkspaceRequest } from './envelope.js';
import { AdmissionServerError } from './errors.js';
import type { AdmissionMetrics, Verdict } from './metrics.js';
import {
  describeError,
  raceDeadline,
  readJsonBody,
  requestSignal,
  seconds,
  sendJson,
  sendRequestError,
} from './http.js';

interface WorkspaceCtx {
  controller: AdmissionController;
  metrics: AdmissionMetrics;
  maxBodyBytes: number;
  toolchainDir: string | undefined;
  log: (line: string) => void;
}

/**
 * POST /workspace: `WorkspaceRequest` JSON in, `WorkspaceVerdict` JSON out (HTTP 200 for every verdict, 400 for a
 * malformed request). Like the webhook, a late or failing controller is a refusal, never an allow.
 */
export async function handleWorkspace(
  ctx: WorkspaceCtx,
  req: IncomingMessage,
  res: ServerResponse,
  deadlineMs: number,
): Promise<void> {
  const started = performance.now();
  const { signal, done } = requestSignal(res, deadlineMs);
  try {
    let request: WorkspaceRequest;
    try {
      request = await confineToolchains(
        parseWorkspaceRequest(await readJsonBody(req, ctx.maxBodyBytes, deadlineMs, signal)),
        ctx.toolchainDir,
      );
    } catch (err) {
      sendRequestError(ctx, res, err);
      return;
    }
    const outcome = await raceDeadline(() => ctx.controller.checkWorkspace(request, { signal }), signal);
    let verdict: WorkspaceVerdict;
    let label: Verdict;
    if (outcome.kind === 'answer' && isVerdict(outcome.value)) {
      verdict = { ...outcome.value, allowed: outcome.value.allowed === true };
      label = verdict.allowed ? 'allow' : 'deny';
    } else {
      const why =
        outcome.kind === 'deadline'
          ? `no verdict within ${deadlineMs} ms`
          : outcome.kind === 'error'
            ? `internal error: ${describeError(outcome.error)}`
            : 'internal error: the controller gave a malformed verdict';
      if (outcome.kind !== 'deadline')
        ctx.log(`admission: workspace check of ${request.image.slice(0, 200)} failed: ${why}`);
      verdict = refused(request, `${why} while checking ${request.image.slice(0, 200)}; refused (fail closed)`);
      label = 'error';
    }
    sendJson(res, 200, verdict);
    ctx.metrics.request('workspace', 'Workspace', label, seconds(started));
  } finally {
    done();
  }
}

function isVerdict(v: unknown): v is WorkspaceVerdict {
  const o = v as Partial<WorkspaceVerdict> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.allowed === 'boolean' &&
    typeof o.reason === 'string' &&
    typeof o.image === 'object' &&
    o.image !== null &&
    Array.isArray(o.toolchains)
  );
}

export function refused(request: WorkspaceRequest, reason: string): WorkspaceVerdict {
  return {
    allowed: false,
    reason,
    image: { reference: request.image, verdict: 'ERROR' },
    toolchains: (request.toolchains ?? []).map((t) => ({ path: t.path, verdict: 'ERROR' as const })),
  };
}

/**
 * Toolchain files named over HTTP must be relative paths inside the operator's --toolchain-dir (symlinks
 * resolved); without one, the HTTP hook checks the image only. Bundles likewise.
 */
async function confineToolchains(request: WorkspaceRequest, dir: string | undefined): Promise<WorkspaceRequest> {
  if (!request.toolchains?.length) return request;
  if (!dir)
    throw new AdmissionServerError(
      'ADMISSION_BAD_REQUEST',
      'this server checks no toolchain files (no --toolchain-dir); run `airlock admit workspace --toolchain` on the workspace host',
    );
  const root = await realpath(dir);
  const inside = async (p: string, what: string): Promise<string> => {
    const rel = normalize(p);
    if (isAbsolute(p) || rel === '..' || rel.startsWith(`..${sep}`))
      throw new AdmissionServerError(
        'ADMISSION_BAD_REQUEST',
        `${what} must be a relative path inside the toolchain directory`,
      );
    let real: string;
    try {
      real = await realpath(join(root, rel));
    } catch {
      throw new AdmissionServerError(
        'ADMISSION_BAD_REQUEST',
        `${what} ${JSON.stringify(p.slice(0, 200))} not found in the toolchain directory`,
      );
    }
    if (real !== root && !real.startsWith(`${root}${sep}`))
      throw new AdmissionServerError('ADMISSION_BAD_REQUEST', `${what} resolves outside the toolchain directory`);
    return real;
  };
  const toolchains = [];
  for (const [i, t] of request.toolchains.entries()) {
    const path = await inside(t.path, `toolchains[${i}].path`);
    const bundles = t.bundles
      ? await Promise.all(t.bundles.map((b, j) => inside(b, `toolchains[${i}].bundles[${j}]`)))
      : undefined;
    toolchains.push({ path, ...(bundles ? { bundles } : {}) });
  }
  return { ...request, toolchains };
}
