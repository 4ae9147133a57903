/**
 * AdmissionReview (admission.k8s.io/v1) requests built from Kubernetes object manifests, one per kind the
 * admission webhook must read images from. Every object is built with `kubernetes-models` and validated against
 * the upstream OpenAPI schema before it is wrapped, so a test never sends an object a real API server would
 * have refused. The shapes are declared here (not imported from @airlock/admission): testkit depends on no
 * product package.
 */
import { CronJob, Job } from 'kubernetes-models/batch/v1';
import { DaemonSet, Deployment, ReplicaSet, StatefulSet } from 'kubernetes-models/apps/v1';
import { Pod, PodTemplate, ReplicationController } from 'kubernetes-models/v1';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IPodTemplateSpec } from 'kubernetes-models/v1/PodTemplateSpec';

export const WORKLOAD_KINDS = [
  'Pod',
  'Deployment',
  'ReplicaSet',
  'StatefulSet',
  'DaemonSet',
  'Job',
  'CronJob',
  'ReplicationController',
  'PodTemplate',
] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

/** The images of one pod spec, by where they sit. */
export interface PodImages {
  containers: string[];
  initContainers?: string[];
  ephemeralContainers?: string[];
  /** `volumes[].image.reference` (image volumes, Kubernetes 1.31+). */
  imageVolumes?: string[];
}

export interface ReviewGvk {
  group: string;
  version: string;
  kind: string;
}
export interface ReviewGvr {
  group: string;
  version: string;
  resource: string;
}

/** The AdmissionRequest fields the builders set (a structural subset of admission.k8s.io/v1). */
export interface TestAdmissionRequest {
  uid: string;
  kind: ReviewGvk;
  resource: ReviewGvr;
  subResource?: string;
  requestKind: ReviewGvk;
  requestResource: ReviewGvr;
  requestSubResource?: string;
  name: string;
  namespace?: string;
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  userInfo: { username: string; uid: string; groups: string[] };
  object?: Record<string, unknown>;
  oldObject?: Record<string, unknown>;
  dryRun: boolean;
  options?: Record<string, unknown>;
}

export interface TestAdmissionReview {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  request: TestAdmissionRequest;
}

interface KindInfo {
  group: string;
  version: string;
  resource: string;
  /** JSON Pointer of the pod spec inside the object (where the images are). */
  podSpecPointer: string;
}

export const KIND_INFO: Record<WorkloadKind, KindInfo> = {
  Pod: { group: '', version: 'v1', resource: 'pods', podSpecPointer: '/spec' },
  Deployment: { group: 'apps', version: 'v1', resource: 'deployments', podSpecPointer: '/spec/template/spec' },
  ReplicaSet: { group: 'apps', version: 'v1', resource: 'replicasets', podSpecPointer: '/spec/template/spec' },
  StatefulSet: { group: 'apps', version: 'v1', resource: 'statefulsets', podSpecPointer: '/spec/template/spec' },
  DaemonSet: { group: 'apps', version: 'v1', resource: 'daemonsets', podSpecPointer: '/spec/template/spec' },
  Job: { group: 'batch', version: 'v1', resource: 'jobs', podSpecPointer: '/spec/template/spec' },
  CronJob: {
    group: 'batch',
    version: 'v1',
    resource: 'cronjobs',
    podSpecPointer: '/spec/jobTemplate/spec/template/spec',
  },
  ReplicationController: {
    group: '',
    version: 'v1',
    resource: 'replicationcontrollers',
    podSpecPointer: '/spec/template/spec',
  },
  PodTemplate: { group: '', version: 'v1', resource: 'podtemplates', podSpecPointer: '/template/spec' },
};

/** A pod spec with one container per image, named `c0`, `init0`, `debug0`, volume `vol0`, … */
export function podSpec(images: PodImages, restartPolicy?: 'Always' | 'OnFailure' | 'Never'): IPodSpec {
  const spec: IPodSpec = {
    containers: images.containers.map((image, i) => ({ name: `c${i}`, image })),
    ...(restartPolicy ? { restartPolicy } : {}),
  };
  if (images.initContainers?.length)
    spec.initContainers = images.initContainers.map((image, i) => ({ name: `init${i}`, image }));
  if (images.ephemeralContainers?.length)
    spec.ephemeralContainers = images.ephemeralContainers.map((image, i) => ({ name: `debug${i}`, image }));
  if (images.imageVolumes?.length)
    spec.volumes = images.imageVolumes.map((reference, i) => ({ name: `vol${i}`, image: { reference } }));
  return spec;
}

const LABELS = { app: 'admission-test' };

function template(images: PodImages, restartPolicy?: 'Always' | 'OnFailure' | 'Never'): IPodTemplateSpec {
  return { metadata: { labels: LABELS }, spec: podSpec(images, restartPolicy) };
}

/**
 * The Kubernetes object of `kind` named `name` whose pod spec holds `images`, validated against the upstream
 * schema (kubernetes-models' validate() throws on any violation), as plain JSON.
 */
export function workloadObject(
  kind: WorkloadKind,
  images: PodImages,
  name = 'test',
  namespace = 'default',
): Record<string, unknown> {
  const metadata = { name, namespace, labels: LABELS };
  const selector = { matchLabels: LABELS };
  const model = (() => {
    switch (kind) {
      case 'Pod':
        return new Pod({ metadata, spec: podSpec(images) });
      case 'Deployment':
        return new Deployment({ metadata, spec: { selector, template: template(images) } });
      case 'ReplicaSet':
        return new ReplicaSet({ metadata, spec: { selector, template: template(images) } });
      case 'StatefulSet':
        return new StatefulSet({ metadata, spec: { selector, serviceName: name, template: template(images) } });
      case 'DaemonSet':
        return new DaemonSet({ metadata, spec: { selector, template: template(images) } });
      case 'Job':
        return new Job({ metadata, spec: { template: template(images, 'Never') } });
      case 'CronJob':
        return new CronJob({
          metadata,
          spec: { schedule: '*/5 * * * *', jobTemplate: { spec: { template: template(images, 'OnFailure') } } },
        });
      case 'ReplicationController':
        return new ReplicationController({ metadata, spec: { selector: LABELS, template: template(images) } });
      case 'PodTemplate':
        return new PodTemplate({ metadata, template: template(images) });
    }
  })();
  model.validate();
  return JSON.parse(JSON.stringify(model.toJSON())) as Record<string, unknown>;
}

export interface ReviewOptions {
  uid?: string;
  name?: string;
  namespace?: string;
  operation?: TestAdmissionRequest['operation'];
  dryRun?: boolean;
  subResource?: string;
  oldObject?: Record<string, unknown>;
}

let counter = 0;
/** A fresh request uid (an RFC 4122 v4 shape, as the API server sends). */
export function reviewUid(): string {
  counter++;
  const hex = (n: number, w: number): string => n.toString(16).padStart(w, '0').slice(-w);
  return `${hex(Date.now(), 8)}-${hex(counter, 4)}-4${hex(process.pid, 3)}-8${hex(counter >> 16, 3)}-${hex(Math.floor(Math.random() * 2 ** 48), 12)}`;
}

/** An AdmissionReview request around `object` (already a valid object of `kind`). */
export function reviewOf(
  kind: WorkloadKind,
  object: Record<string, unknown>,
  options: ReviewOptions = {},
): TestAdmissionReview {
  const info = KIND_INFO[kind];
  const gvk = { group: info.group, version: info.version, kind };
  const gvr = { group: info.group, version: info.version, resource: info.resource };
  const metadata = (object.metadata ?? {}) as { name?: string; namespace?: string };
  const operation = options.operation ?? 'CREATE';
  const sub = options.subResource;
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: options.uid ?? reviewUid(),
      kind: gvk,
      resource: gvr,
      ...(sub ? { subResource: sub } : {}),
      requestKind: gvk,
      requestResource: gvr,
      ...(sub ? { requestSubResource: sub } : {}),
      name: options.name ?? metadata.name ?? 'test',
      namespace: options.namespace ?? metadata.namespace ?? 'default',
      operation,
      userInfo: { username: 'system:serviceaccount:ci:deployer', uid: 'u-1', groups: ['system:authenticated'] },
      ...(operation === 'DELETE' ? {} : { object }),
      ...(options.oldObject ? { oldObject: options.oldObject } : {}),
      dryRun: options.dryRun ?? false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: operation === 'UPDATE' ? 'UpdateOptions' : 'CreateOptions' },
    },
  };
}

/** The AdmissionReview for creating (or, with options, updating/deleting) a `kind` whose pod spec holds `images`. */
export function workloadReview(
  kind: WorkloadKind,
  images: PodImages,
  options: ReviewOptions = {},
): TestAdmissionReview {
  const object = workloadObject(kind, images, options.name, options.namespace);
  return reviewOf(kind, object, options);
}

/** One review per kind, all with the same images. */
export function reviewsForEveryKind(
  images: PodImages,
  options: ReviewOptions = {},
): Map<WorkloadKind, TestAdmissionReview> {
  return new Map(WORKLOAD_KINDS.map((k) => [k, workloadReview(k, images, { ...options, uid: undefined })]));
}

/**
 * `kubectl debug`: an UPDATE of the `pods/ephemeralcontainers` subresource. oldObject is the running pod without
 * the new ephemeral container; object is the same pod with `newEphemeral` appended to `ephemeralContainers`
 * (after any it already had).
 */
export function ephemeralContainersReview(
  pod: PodImages,
  newEphemeral: string,
  options: Omit<ReviewOptions, 'operation' | 'subResource' | 'oldObject'> = {},
): TestAdmissionReview {
  const oldObject = workloadObject('Pod', pod, options.name, options.namespace);
  const object = workloadObject(
    'Pod',
    { ...pod, ephemeralContainers: [...(pod.ephemeralContainers ?? []), newEphemeral] },
    options.name,
    options.namespace,
  );
  return reviewOf('Pod', object, { ...options, operation: 'UPDATE', subResource: 'ephemeralcontainers', oldObject });
}

/** Every image JSON Pointer in `object` of `kind`, with its value (what a mutating webhook must pin). */
export function imagePointers(kind: WorkloadKind, object: Record<string, unknown>): Map<string, string> {
  const base = KIND_INFO[kind].podSpecPointer;
  const spec = base
    .split('/')
    .slice(1)
    .reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], object) as IPodSpec | undefined;
  const out = new Map<string, string>();
  for (const field of ['containers', 'initContainers', 'ephemeralContainers'] as const)
    (spec?.[field] ?? []).forEach((c, i) => {
      if (c.image !== undefined) out.set(`${base}/${field}/${i}/image`, c.image);
    });
  (spec?.volumes ?? []).forEach((v, i) => {
    if (v.image?.reference !== undefined) out.set(`${base}/volumes/${i}/image/reference`, v.image.reference);
  });
  return out;
}
