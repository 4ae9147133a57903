/**
 * The malformed-input corpus for the admission endpoints (issue 9 §3): bodies an attacker or a broken client may
 * send. Each must be answered (HTTP 4xx, or an AdmissionReview that denies), never crash or hang the server, and
 * never be allowed. `acceptable` says which answers are right for the entry.
 */
import { reviewUid, workloadReview, type TestAdmissionReview } from './reviews.js';

/**
 * `connection-cut`: the client saw EPIPE/ECONNRESET instead of an answer. No entry accepts it any more: the server
 * drains a refused body (bounded) so even the 10 MiB body gets its 413.
 */
export type MalformedAnswer = 'http-4xx' | 'deny' | 'connection-cut';

export interface MalformedCase {
  name: string;
  /** The request body (built lazily: one entry is 10 MiB). */
  body(): Buffer;
  /** The answers that are correct for this input; anything else (an allow, a 5xx, a hang) is a failure. */
  acceptable: MalformedAnswer[];
  /** The request uid, when the body has one a deny must echo. */
  uid?: string;
}

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');

/**
 * The corpus; `image` is a reference a policy would otherwise allow (so only the malformation can cause the
 * refusal), `registryHost` the host the 5,000-character reference is placed under.
 */
export function malformedCorpus(image: string, registryHost: string): MalformedCase[] {
  const valid = (): TestAdmissionReview => workloadReview('Pod', { containers: [image] });
  const longUid = reviewUid();
  const unknownUid = reviewUid();
  const noObjectUid = reviewUid();
  const wrongVersion = valid();
  return [
    {
      name: 'truncated JSON',
      body: () => {
        const b = json(valid());
        return b.subarray(0, Math.floor(b.length / 2));
      },
      acceptable: ['http-4xx'],
    },
    {
      name: '10 MiB body',
      body: () => {
        const r = valid();
        const obj = r.request.object as { metadata: { annotations?: Record<string, string> } };
        obj.metadata.annotations = { padding: 'x'.repeat(10 * 1024 * 1024) };
        return json(r);
      },
      // The 413 itself, reliably: a cut connection would hide why the request was refused.
      acceptable: ['http-4xx'],
    },
    {
      name: 'wrong apiVersion (admission.k8s.io/v1beta1)',
      body: () => json({ ...wrongVersion, apiVersion: 'admission.k8s.io/v1beta1' }),
      acceptable: ['http-4xx', 'deny'],
      uid: wrongVersion.request.uid,
    },
    {
      name: 'missing request.uid',
      body: () => {
        const r = valid() as { request: Partial<TestAdmissionReview['request']> };
        delete r.request.uid;
        return json(r);
      },
      acceptable: ['http-4xx'],
    },
    {
      name: 'unknown kind (example.com/v1 Frobnicator with a pod spec)',
      body: () => {
        const r = valid();
        r.request.uid = unknownUid;
        r.request.kind = { group: 'example.com', version: 'v1', kind: 'Frobnicator' };
        r.request.resource = { group: 'example.com', version: 'v1', resource: 'frobnicators' };
        r.request.requestKind = r.request.kind;
        r.request.requestResource = r.request.resource;
        r.request.object = { ...r.request.object, apiVersion: 'example.com/v1', kind: 'Frobnicator' };
        return json(r);
      },
      acceptable: ['http-4xx', 'deny'],
      uid: unknownUid,
    },
    {
      name: 'image reference of 5,000 characters',
      body: () => {
        const ref = `${registryHost}/${'a'.repeat(5000 - registryHost.length - 4)}:v1`;
        return json(workloadReview('Pod', { containers: [ref] }, { uid: longUid }));
      },
      acceptable: ['deny', 'http-4xx'],
      uid: longUid,
    },
    {
      name: 'not an object (a JSON array)',
      body: () => json([valid()]),
      acceptable: ['http-4xx'],
    },
    {
      name: 'request without object on CREATE',
      body: () => {
        const r = valid();
        r.request.uid = noObjectUid;
        delete r.request.object;
        return json(r);
      },
      acceptable: ['http-4xx', 'deny'],
      uid: noObjectUid,
    },
  ];
}
