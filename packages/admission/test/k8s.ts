/**
 * Kubernetes objects for the admission tests, each built with `kubernetes-models` (4.5.1) and validated against the
 * upstream OpenAPI definitions before use, so every fixture is an object the API server would accept.
 */
import { CronJob, Job } from 'kubernetes-models/batch/v1';
import { DaemonSet, Deployment, ReplicaSet, StatefulSet } from 'kubernetes-models/apps/v1';
import { Pod, PodTemplate, ReplicationController, type IPodSpec } from 'kubernetes-models/v1';
import type { AdmissionRequest } from '../src/types.js';

export interface Images {
  containers: string[];
  initContainers?: string[];
  ephemeralContainers?: string[];
  volumes?: string[];
}

export function podSpec(images: Images): IPodSpec {
  const spec: IPodSpec = { containers: images.containers.map((image, i) => ({ name: `c${i}`, image })) };
  if (images.initContainers)
    spec.initContainers = images.initContainers.map((image, i) => ({ name: `init${i}`, image }));
  if (images.ephemeralContainers)
    spec.ephemeralContainers = images.ephemeralContainers.map((image, i) => ({ name: `debug${i}`, image }));
  if (images.volumes) spec.volumes = images.volumes.map((reference, i) => ({ name: `v${i}`, image: { reference } }));
  return spec;
}

const meta = { name: 'app', namespace: 'team-a', labels: { app: 'app' } };
const selector = { matchLabels: { app: 'app' } };
const template = (images: Images) => ({ metadata: { labels: { app: 'app' } }, spec: podSpec(images) });

/** One valid object per kind, all carrying the same images; `validate()` throws for an invalid one. */
export function objectOfKind(
  kind: string,
  images: Images,
): { object: Record<string, unknown>; group: string; version: string; resource: string } {
  const m = build(kind, images);
  m.model.validate();
  return { object: m.model.toJSON() as Record<string, unknown>, group: m.group, version: 'v1', resource: m.resource };
}

function build(
  kind: string,
  images: Images,
): { model: { validate(): void; toJSON(): unknown }; group: string; resource: string } {
  switch (kind) {
    case 'Pod':
      return { model: new Pod({ metadata: meta, spec: podSpec(images) }), group: '', resource: 'pods' };
    case 'Deployment':
      return {
        model: new Deployment({ metadata: meta, spec: { selector, template: template(images) } }),
        group: 'apps',
        resource: 'deployments',
      };
    case 'ReplicaSet':
      return {
        model: new ReplicaSet({ metadata: meta, spec: { selector, template: template(images) } }),
        group: 'apps',
        resource: 'replicasets',
      };
    case 'StatefulSet':
      return {
        model: new StatefulSet({ metadata: meta, spec: { selector, serviceName: 'app', template: template(images) } }),
        group: 'apps',
        resource: 'statefulsets',
      };
    case 'DaemonSet':
      return {
        model: new DaemonSet({ metadata: meta, spec: { selector, template: template(images) } }),
        group: 'apps',
        resource: 'daemonsets',
      };
    case 'Job':
      return {
        model: new Job({
          metadata: meta,
          spec: { template: { ...template(images), spec: { ...podSpec(images), restartPolicy: 'Never' } } },
        }),
        group: 'batch',
        resource: 'jobs',
      };
    case 'CronJob':
      return {
        model: new CronJob({
          metadata: meta,
          spec: {
            schedule: '*/5 * * * *',
            jobTemplate: {
              spec: { template: { ...template(images), spec: { ...podSpec(images), restartPolicy: 'OnFailure' } } },
            },
          },
        }),
        group: 'batch',
        resource: 'cronjobs',
      };
    case 'ReplicationController':
      return {
        model: new ReplicationController({
          metadata: meta,
          spec: { selector: { app: 'app' }, template: template(images) },
        }),
        group: '',
        resource: 'replicationcontrollers',
      };
    case 'PodTemplate':
      return {
        model: new PodTemplate({ metadata: meta, template: template(images) }),
        group: '',
        resource: 'podtemplates',
      };
    default:
      throw new Error(`no fixture for ${kind}`);
  }
}

export const ALL_KINDS = [
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

let uid = 0;

/** An AdmissionRequest (admission.k8s.io/v1) for an object of `kind`. */
export function admissionRequest(
  kind: string,
  images: Images,
  extra: Partial<AdmissionRequest> = {},
): AdmissionRequest {
  const o = objectOfKind(kind, images);
  return {
    uid: `00000000-0000-0000-0000-${String(++uid).padStart(12, '0')}`,
    kind: { group: o.group, version: o.version, kind },
    resource: { group: o.group, version: o.version, resource: o.resource },
    name: 'app',
    namespace: 'team-a',
    operation: 'CREATE',
    userInfo: { username: 'alice' },
    object: o.object,
    dryRun: false,
    ...extra,
  };
}

/** `kubectl debug`: an UPDATE of pods/ephemeralcontainers whose oldObject has the existing ephemeral containers. */
export function ephemeralUpdate(
  containers: string[],
  oldEphemeral: string[],
  newEphemeral: string[],
): AdmissionRequest {
  const old = objectOfKind('Pod', { containers, ephemeralContainers: oldEphemeral });
  const next = objectOfKind('Pod', { containers, ephemeralContainers: [...oldEphemeral, ...newEphemeral] });
  return {
    ...admissionRequest('Pod', { containers }),
    operation: 'UPDATE',
    subResource: 'ephemeralcontainers',
    requestSubResource: 'ephemeralcontainers',
    object: next.object,
    oldObject: old.object,
  };
}
