import { parseImageReference } from '@airlock/oci';
import type { ImagePolicy, LoadedAdmissionPolicy } from './load.js';

/**
 * `host/repository` as policies match it: a reference without a registry is Docker Hub's (`docker.io`, with
 * `library/` for a one-segment name), the way the kubelet pulls it, so `nginx` cannot slip past a `docker.io/**`
 * policy. Throws for an invalid reference.
 */
export function matchName(image: string): string {
  return matchNameOf(parseImageReference(image));
}

/** matchName of a reference already parsed (the webhook parses each image once per request). */
export function matchNameOf(ref: { registry?: string | undefined; repository: string }): string {
  if (ref.registry !== undefined) return `${ref.registry}/${ref.repository}`;
  return `docker.io/${ref.repository.includes('/') ? ref.repository : `library/${ref.repository}`}`;
}

/** Every policy that applies to this image in this namespace (all must pass). */
export function matchingPolicies(
  loaded: LoadedAdmissionPolicy,
  name: string,
  namespace: string | undefined,
): ImagePolicy[] {
  return loaded.policies.filter(
    (p) =>
      p.images.some((re) => re.test(name)) &&
      !p.exclude.some((re) => re.test(name)) &&
      (p.namespaces === undefined || (namespace !== undefined && p.namespaces.some((re) => re.test(namespace)))),
  );
}
