import { parseImageReference } from '@airlock/oci';
import type { ImagePolicy, LoadedAdmissionPolicy } from './load.js';

/**
 * `host/repository` as policies match it: a reference without a registry is Docker Hub's (`docker.io`, with
 * `library/` for a one-segment name), the way the kubelet pulls it, so `nginx` cannot slip past a `docker.io/**`
 * policy. Throws for an invalid reference.
 */
export function matchName(image: string): string {
  const ref = parseImageReference(image);
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
