import { schemaProblems, type SchemaError } from '@airlock/schemas';
import { AdmissionError } from '../errors.js';

const unavailable = (e: SchemaError): Error =>
  new AdmissionError('ADMISSION_POLICY_INVALID', 'cannot load admission-policy.v1.schema.json', { cause: e });

/**
 * Problems of an admission policy document against schemas/admission-policy.v1.schema.json (the repository's one
 * loader), one line per problem naming its field (`admission.policies[0].mode: …`); empty when it fits.
 */
export function admissionPolicyProblems(value: unknown): string[] {
  return schemaProblems('admission-policy.v1', value, { root: 'admission' }, unavailable);
}
