import { canonicalize, sha256Hex, type DigestAlgorithm } from '@airlock/core';
import { Enums, Models } from '@cyclonedx/cyclonedx-library';
import type { PackageURL } from 'packageurl-js';
import { checkDigests, isObject, isShortString, Problems, refPart } from './checks.js';
import { AIRLOCK_SBOM_VERSION, airlockTool, makeComponent, toCycloneDxJson } from './cyclonedx.js';
import { SbomError } from './errors.js';
import { genericPurl, parsePurl } from './purl.js';
import type { BuildInput, BuildSbomInput, CycloneDxBom } from './types.js';
import { AIRLOCK_SBOM_NAMESPACE, SERIAL_NUMBER_RE, uuidV5 } from './uuid.js';

const MAX_INPUTS = 100_000;
const SUBJECT_TYPES = ['application', 'library', 'file', 'container', 'firmware'] as const;
const REF_DIGEST_ORDER: DigestAlgorithm[] = ['sha256', 'sha512', 'sha384', 'sha1'];

/**
 * CycloneDX 1.6 SBOM of one build output and the inputs it consumed: metadata.component is the artifact, the
 * components are the inputs, and the dependency graph has the artifact depending on every input. Lifecycle
 * phase `build`. Deterministic: serialNumber defaults to a UUID v5 of the canonical input, and there is no
 * timestamp unless one is given.
 */
export function sbomForBuild(input: BuildSbomInput): CycloneDxBom {
  const problems = new Problems();
  checkBuildInput(input, problems);
  if (!isObject(input))
    throw new SbomError('SBOM_INVALID_INPUT', problems.summary('build SBOM input'), {
      details: { problems: problems.list },
    });
  const purls = new Map<BuildInput, PackageURL>();
  let subjectPurl: PackageURL | undefined;
  if (problems.empty) {
    if (input.subject.purl) {
      try {
        subjectPurl = parsePurl(input.subject.purl);
      } catch (err) {
        problems.add(`subject.purl: ${(err as Error).message}`);
      }
    }
    input.components.forEach((c, i) => {
      try {
        purls.set(
          c,
          c.purl
            ? parsePurl(c.purl)
            : genericPurl(c.name, c.version ?? null, { downloadUrl: httpUrl(c.uri), sha256: c.digests.sha256 }),
        );
      } catch (err) {
        problems.add(`components[${i}].purl: ${(err as Error).message}`);
      }
    });
  }
  const inputs = problems.empty ? dedupeInputs(input.components, problems) : [];
  const serialNumber =
    input.serialNumber ??
    (problems.empty ? `urn:uuid:${uuidV5(AIRLOCK_SBOM_NAMESPACE, `build:${contentKey(input)}`)}` : '');
  if (problems.empty && !SERIAL_NUMBER_RE.test(serialNumber))
    problems.add(`serialNumber must look like urn:uuid:<lowercase uuid>, got '${serialNumber}'`);
  let timestamp: Date | undefined;
  if (input.timestamp !== undefined) {
    timestamp = new Date(input.timestamp);
    if (Number.isNaN(timestamp.getTime())) problems.add('timestamp is not a valid date');
  }
  if (!problems.empty) {
    throw new SbomError('SBOM_INVALID_INPUT', problems.summary('build SBOM input'), {
      details: { problems: problems.list },
    });
  }

  const bom = new Models.Bom({ serialNumber });
  bom.version = 1;
  if (timestamp) bom.metadata.timestamp = timestamp;
  bom.metadata.lifecycles.add(Enums.LifecyclePhase.Build);
  bom.metadata.tools.components.add(airlockTool(input.toolVersion ?? AIRLOCK_SBOM_VERSION));
  for (const [name, value] of Object.entries(input.properties ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    bom.metadata.properties.add(new Models.Property(name, value));
  }
  const { subject } = input;
  const root = makeComponent({
    type: (subject.type ?? 'file') as Enums.ComponentType,
    name: subject.name,
    version: subject.version,
    bomRef: `artifact:${refPart(subject.name)}`,
    purl: subjectPurl,
    digests: subject.digests,
  });
  bom.metadata.component = root;
  for (const c of inputs) {
    const purl = purls.get(c)!;
    const component = makeComponent({
      type: purl.type === 'generic' ? Enums.ComponentType.File : Enums.ComponentType.Library,
      name: c.name,
      version: c.version,
      bomRef: inputBomRef(c),
      purl,
      digests: c.digests,
      externalReferences: c.uri
        ? [
            {
              type: isVcs(c.uri) ? Enums.ExternalReferenceType.VCS : Enums.ExternalReferenceType.Distribution,
              url: c.uri,
            },
          ]
        : [],
    });
    bom.components.add(component);
    root.dependencies.add(component.bomRef);
  }
  return toCycloneDxJson(bom);
}

/** `input:<name>@<version>#<alg>:<hex>` with the strongest-preferred digest (sha256 first), percent-encoded. */
export function inputBomRef(c: Pick<BuildInput, 'name' | 'version' | 'digests'>): string {
  const alg = REF_DIGEST_ORDER.find((a) => c.digests[a] !== undefined)!;
  return `input:${refPart(c.name)}@${refPart(c.version ?? '')}#${alg}:${c.digests[alg]!.toLowerCase()}`;
}

function isVcs(uri: string): boolean {
  return /^git(\+[a-z]+)?:/i.test(uri);
}

function httpUrl(uri: string | undefined): string | undefined {
  return uri && /^https?:\/\//i.test(uri) ? uri : undefined;
}

/** The same input listed twice is one component; two different inputs with one bom-ref are an error. */
function dedupeInputs(components: BuildInput[], problems: Problems): BuildInput[] {
  const byRef = new Map<string, { input: BuildInput; index: number }>();
  components.forEach((c, index) => {
    const ref = inputBomRef(c);
    const seen = byRef.get(ref);
    if (!seen) byRef.set(ref, { input: c, index });
    else if (canonicalize(seen.input) !== canonicalize(c))
      problems.add(`components[${index}] and components[${seen.index}] share bom-ref '${ref}' but differ`);
  });
  return [...byRef.values()].map((v) => v.input);
}

/** What the default serial number is derived from: everything but serialNumber/timestamp/toolVersion. */
function contentKey(input: BuildSbomInput): string {
  const refs = input.components.map(inputBomRef).sort();
  return sha256Hex(
    canonicalize({ subject: input.subject, inputs: [...new Set(refs)], properties: input.properties ?? {} }),
  );
}

function checkBuildInput(input: unknown, problems: Problems): void {
  if (!isObject(input)) return problems.add('input must be an object');
  const s = input.subject;
  if (!isObject(s)) {
    problems.add('subject must be an object');
  } else {
    if (!isShortString(s.name)) problems.add('subject.name must be a non-empty string');
    if (s.version !== undefined && !isShortString(s.version))
      problems.add('subject.version must be a non-empty string');
    if (checkDigests(s.digests, 'subject.digests', problems) === 0 && isObject(s.digests))
      problems.add('subject.digests must hold at least one digest');
    if (s.purl !== undefined && !isShortString(s.purl)) problems.add('subject.purl must be a non-empty string');
    if (s.type !== undefined && !(SUBJECT_TYPES as readonly unknown[]).includes(s.type))
      problems.add(`subject.type must be one of ${SUBJECT_TYPES.join(', ')}`);
  }
  if (!Array.isArray(input.components)) return problems.add('components must be an array');
  if (input.components.length > MAX_INPUTS) return problems.add(`components has more than ${MAX_INPUTS} items`);
  input.components.forEach((c: unknown, i: number) => {
    const at = `components[${i}]`;
    if (!isObject(c)) return problems.add(`${at} must be an object`);
    if (!isShortString(c.name)) problems.add(`${at}.name must be a non-empty string`);
    if (c.version !== undefined && !isShortString(c.version)) problems.add(`${at}.version must be a non-empty string`);
    if (checkDigests(c.digests, `${at}.digests`, problems) === 0 && isObject(c.digests))
      problems.add(`${at}.digests must hold at least one digest`);
    if (c.purl !== undefined && !isShortString(c.purl)) problems.add(`${at}.purl must be a non-empty string`);
    if (c.uri !== undefined && !isShortString(c.uri)) problems.add(`${at}.uri must be a non-empty string`);
  });
  if (input.properties !== undefined) {
    if (
      !isObject(input.properties) ||
      !Object.entries(input.properties).every(([k, v]) => isShortString(k) && isShortString(v, { allowEmpty: true }))
    ) {
      problems.add('properties must map non-empty names to strings');
    }
  }
  if (input.serialNumber !== undefined && typeof input.serialNumber !== 'string')
    problems.add('serialNumber must be a string');
}
