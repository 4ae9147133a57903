import { readFileSync } from 'node:fs';
import { S3Error } from './errors.js';

/** Where the blobs live: `s3://bucket/prefix` (prefix optional; stored with a trailing slash, or empty). */
export interface S3Location {
  bucket: string;
  prefix: string;
}

/** How to reach the object store: operator configuration only (environment or a config file). */
export interface S3Connection {
  endpoint?: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** Path-style URLs (`endpoint/bucket/key`); default true, which every S3-compatible server accepts. */
  forcePathStyle: boolean;
}

/** The config file (`--s3-config FILE`): JSON with these optional fields; present fields win over the environment. */
export interface S3ConfigFile {
  endpoint?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  forcePathStyle?: boolean;
}

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX_SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

export function isS3Url(value: string): boolean {
  return value.startsWith('s3://');
}

/** Parses `s3://bucket/prefix`; the prefix is a few plain path segments (no `..`, no empty segments). */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (!m) throw new S3Error('S3_CONFIG_INVALID', `'${url}' is not an s3://bucket/prefix URL`);
  const bucket = m[1]!;
  if (!BUCKET_RE.test(bucket) || bucket.includes('..'))
    throw new S3Error('S3_CONFIG_INVALID', `'${bucket}' is not a valid S3 bucket name`);
  const raw = (m[2] ?? '').replace(/\/+$/, '');
  if (raw === '') return { bucket, prefix: '' };
  const segments = raw.split('/');
  for (const s of segments) {
    if (!PREFIX_SEGMENT_RE.test(s) || s === '.' || s === '..')
      throw new S3Error('S3_CONFIG_INVALID', `prefix '${raw}' of ${url}: segments must be [A-Za-z0-9._-], not . or ..`);
  }
  return { bucket, prefix: `${raw}/` };
}

/**
 * The connection from a config file (if given) over the environment (AWS_ENDPOINT_URL, AWS_REGION or
 * AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). No other source is consulted
 * (no ~/.aws, no instance metadata): an air-gapped mirror talks only to the store its operator named.
 */
export function resolveS3Connection(options: { configFile?: string; env?: NodeJS.ProcessEnv } = {}): S3Connection {
  const env = options.env ?? process.env;
  const file = options.configFile === undefined ? {} : readConfigFile(options.configFile);
  const endpoint = file.endpoint ?? nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  const accessKeyId = file.accessKeyId ?? nonEmpty(env.AWS_ACCESS_KEY_ID);
  const secretAccessKey = file.secretAccessKey ?? nonEmpty(env.AWS_SECRET_ACCESS_KEY);
  const sessionToken = file.sessionToken ?? nonEmpty(env.AWS_SESSION_TOKEN);
  if (!accessKeyId || !secretAccessKey) {
    throw new S3Error(
      'S3_CREDENTIALS_MISSING',
      `no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY${options.configFile ? ` or accessKeyId/secretAccessKey in ${options.configFile}` : ' (or pass --s3-config FILE)'}`,
    );
  }
  if (endpoint !== undefined) checkEndpoint(endpoint);
  return {
    ...(endpoint !== undefined ? { endpoint } : {}),
    region: file.region ?? nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? 'us-east-1',
    accessKeyId,
    secretAccessKey,
    ...(sessionToken !== undefined ? { sessionToken } : {}),
    forcePathStyle: file.forcePathStyle ?? true,
  };
}

function readConfigFile(path: string): S3ConfigFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    // Only the kind of failure: a JSON error message can quote the file's text, which holds the secret.
    const what = err instanceof SyntaxError ? 'is not valid JSON' : 'cannot be read';
    throw new S3Error('S3_CONFIG_INVALID', `S3 config file ${path} ${what}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new S3Error('S3_CONFIG_INVALID', `S3 config file ${path} must hold a JSON object`);
  const out: S3ConfigFile = {};
  const allowed = new Set(['endpoint', 'region', 'accessKeyId', 'secretAccessKey', 'sessionToken', 'forcePathStyle']);
  for (const [key, value] of Object.entries(parsed)) {
    if (!allowed.has(key)) throw new S3Error('S3_CONFIG_INVALID', `S3 config file ${path}: unknown field '${key}'`);
    if (key === 'forcePathStyle') {
      if (typeof value !== 'boolean')
        throw new S3Error('S3_CONFIG_INVALID', `S3 config file ${path}: forcePathStyle must be true or false`);
      out.forcePathStyle = value;
    } else {
      if (typeof value !== 'string' || value === '')
        throw new S3Error('S3_CONFIG_INVALID', `S3 config file ${path}: ${key} must be a non-empty string`);
      (out as Record<string, string>)[key] = value;
    }
  }
  return out;
}

function checkEndpoint(endpoint: string): void {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new S3Error('S3_CONFIG_INVALID', 'the S3 endpoint is not a URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new S3Error('S3_CONFIG_INVALID', `the S3 endpoint must be http(s), got ${u.protocol}`);
  // Credentials belong in their own settings: a URL is printed in messages.
  if (u.username || u.password)
    throw new S3Error('S3_CONFIG_INVALID', 'the S3 endpoint URL must not carry credentials');
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}
