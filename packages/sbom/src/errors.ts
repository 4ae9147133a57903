import { AirlockError } from '@airlock/core';

export type SbomErrorCode =
  /** The manifest / build description handed in is not well-formed (details.problems lists why). */
  | 'SBOM_INVALID_INPUT'
  /** A package URL did not parse, or none could be made for a component. */
  | 'SBOM_INVALID_PURL'
  /** The CycloneDX JSON schema shipped with @cyclonedx/cyclonedx-library could not be loaded or compiled. */
  | 'SBOM_SCHEMA_UNAVAILABLE';

export class SbomError extends AirlockError<SbomErrorCode> {}
