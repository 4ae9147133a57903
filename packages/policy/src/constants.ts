import { AIRLOCK_BUILD_TYPE } from '@airlock/schemas';

/**
 * The predicate types and the build type the policy engine reads are defined once, in @airlock/schemas;
 * re-exported here for the policy's users.
 */
export {
  AIRLOCK_BUILD_TYPE,
  CYCLONEDX_PREDICATE_TYPE,
  SLSA_PROVENANCE_V1,
  SLSA_VSA_V1,
  TRANSFER_MANIFEST_MEDIA_TYPE,
  TRANSFER_MANIFEST_PREDICATE_TYPE,
  isCycloneDxPredicateType,
} from '@airlock/schemas';

/** The policy document's apiVersion. */
export const POLICY_API_VERSION = 'airlock.dev/policy/v1';

/**
 * Build types whose provenance records an isolated, hosted build (the runner's bubblewrap sandbox with its own
 * network, user and pid namespaces): a prerequisite for claiming SLSA Build L3 in a VSA.
 */
export const ISOLATED_BUILD_TYPES: readonly string[] = [AIRLOCK_BUILD_TYPE];
