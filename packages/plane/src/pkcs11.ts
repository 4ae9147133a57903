import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as Pkcs11Types from 'pkcs11js';
import { PlaneError } from './plane.js';

/** An RFC 7512 PKCS#11 URI naming a private key, as far as the plane accepts it. */
export interface Pkcs11KeyUri {
  token?: string;
  object?: string;
  /** CKA_ID bytes. */
  id?: Buffer;
  manufacturer?: string;
  model?: string;
  serial?: string;
  modulePath: string;
  pinSource: { file: string } | { env: string };
  /** The URI as given (it never carries a PIN: `pin-value` is refused). */
  text: string;
}

const PATH_ATTRS = new Set(['token', 'object', 'id', 'type', 'manufacturer', 'model', 'serial']);
const QUERY_ATTRS = new Set(['module-path', 'pin-source']);

/** The URI fit for an error message: a `pin-value` (which the plane refuses) is never echoed. */
const redact = (uri: string): string => uri.replace(/([?&]pin-value=)[^&#]*/g, '$1<redacted>');

const uriError = (uri: string, why: string): PlaneError =>
  new PlaneError('PLANE_PKCS11_URI', `invalid PKCS#11 URI '${redact(uri)}': ${why}`);

/** RFC 7512 pk11-pchar / pk11-qchar values: unreserved characters, a few sub-delims, or %XX. */
function decodeValue(uri: string, name: string, raw: string, query: boolean): Buffer {
  const allowed = query
    ? /^(?:[A-Za-z0-9\-._~:[\]@!$'()*+,=/?|]|%[0-9A-Fa-f]{2})*$/
    : /^(?:[A-Za-z0-9\-._~:[\]@!$'()*+,=&]|%[0-9A-Fa-f]{2})*$/;
  if (!allowed.test(raw)) throw uriError(uri, `attribute '${name}' has a character that must be percent-encoded`);
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '%') {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(raw.charCodeAt(i));
  }
  return Buffer.from(bytes);
}

function parseAttrs(uri: string, part: string, sep: string, known: Set<string>, query: boolean): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (part === '') return out;
  for (const attr of part.split(sep)) {
    const eq = attr.indexOf('=');
    if (eq <= 0) throw uriError(uri, `'${attr}' is not name=value`);
    const name = attr.slice(0, eq);
    if (name === 'pin-value') throw uriError(uri, 'pin-value is refused: name a PIN file or variable with pin-source');
    if (!known.has(name)) throw uriError(uri, `unsupported attribute '${name}'`);
    if (out.has(name)) throw uriError(uri, `attribute '${name}' is repeated`);
    out.set(name, decodeValue(uri, name, attr.slice(eq + 1), query));
  }
  return out;
}

/**
 * Strict RFC 7512 parsing: only the attributes the plane uses, each once; `type` must be `private`; `module-path`
 * (an absolute path) and `pin-source` are required. pin-source is `file:/abs/path` (or `/abs/path`) or `env:NAME`.
 */
export function parsePkcs11Uri(uri: string): Pkcs11KeyUri {
  if (!uri.startsWith('pkcs11:')) throw uriError(uri, "it must start with 'pkcs11:'");
  if (uri.includes('#')) throw uriError(uri, 'a fragment is not allowed');
  const rest = uri.slice('pkcs11:'.length);
  const q = rest.indexOf('?');
  const path = parseAttrs(uri, q < 0 ? rest : rest.slice(0, q), ';', PATH_ATTRS, false);
  const query = parseAttrs(uri, q < 0 ? '' : rest.slice(q + 1), '&', QUERY_ATTRS, true);
  const str = (m: Map<string, Buffer>, k: string): string | undefined => m.get(k)?.toString('utf8');
  const type = str(path, 'type');
  if (type !== undefined && type !== 'private') throw uriError(uri, `type must be 'private', not '${type}'`);
  if (!path.has('object') && !path.has('id')) throw uriError(uri, 'name the key with object= or id=');
  const modulePath = str(query, 'module-path');
  if (!modulePath?.startsWith('/'))
    throw uriError(uri, 'module-path=<absolute path of the PKCS#11 module> is required');
  const pin = str(query, 'pin-source');
  if (!pin) throw uriError(uri, 'pin-source=file:<path> or pin-source=env:<NAME> is required');
  let pinSource: Pkcs11KeyUri['pinSource'];
  if (pin.startsWith('env:') && /^[A-Za-z_][A-Za-z0-9_]*$/.test(pin.slice(4))) pinSource = { env: pin.slice(4) };
  else if (pin.startsWith('file:/')) pinSource = { file: pin.slice(5) };
  else if (pin.startsWith('/')) pinSource = { file: pin };
  else throw uriError(uri, 'pin-source must be file:<absolute path> or env:<NAME>');
  const out: Pkcs11KeyUri = { modulePath, pinSource, text: uri };
  for (const k of ['token', 'object', 'manufacturer', 'model', 'serial'] as const) {
    const v = str(path, k);
    if (v !== undefined) out[k] = v;
  }
  if (path.has('id')) out.id = path.get('id')!;
  return out;
}

function readPin(key: Pkcs11KeyUri): string {
  if ('env' in key.pinSource) {
    const v = process.env[key.pinSource.env];
    if (!v) throw new PlaneError('PLANE_PKCS11_PIN', `${key.text}: the PIN variable ${key.pinSource.env} is not set`);
    return v;
  }
  try {
    return readFileSync(key.pinSource.file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new PlaneError('PLANE_PKCS11_PIN', `${key.text}: cannot read the PIN file ${key.pinSource.file}`, {
      cause: (err as NodeJS.ErrnoException).code,
    });
  }
}

/** DER for the P-256 curve OID, as CKA_EC_PARAMS holds it. */
const P256_PARAMS = Buffer.from('06082a8648ce3d030107', 'hex');
/** SPKI prefix for an uncompressed P-256 point (id-ecPublicKey, prime256v1, BIT STRING of 66 bytes). */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

/** The signer interface of @airlock/tlog and @airlock/ca: SPKI + ECDSA-SHA256 → DER. */
export interface TokenSigner {
  readonly spkiDer: Buffer;
  sign(data: Uint8Array): Buffer;
  close(): void;
}

type Pkcs11Module = typeof Pkcs11Types;

function loadBinding(): Pkcs11Module {
  // Loaded only when a pkcs11: URI is used: the native module is not needed otherwise.
  return createRequire(import.meta.url)('pkcs11js') as Pkcs11Module;
}

/** A module is initialized once per process (C_Initialize/C_Finalize are process-wide): shared, counted. */
const modules = new Map<string, { lib: Pkcs11Types.PKCS11; refs: number }>();

function acquireModule(pk: Pkcs11Module, key: Pkcs11KeyUri): Pkcs11Types.PKCS11 {
  const held = modules.get(key.modulePath);
  if (held) {
    held.refs++;
    return held.lib;
  }
  const lib = new pk.PKCS11();
  try {
    lib.load(key.modulePath);
    lib.C_Initialize();
  } catch (err) {
    throw new PlaneError('PLANE_PKCS11_MODULE', `${key.text}: cannot load the PKCS#11 module ${key.modulePath}`, {
      cause: (err as Error).message,
    });
  }
  modules.set(key.modulePath, { lib, refs: 1 });
  return lib;
}

function releaseModule(modulePath: string): void {
  const held = modules.get(modulePath);
  if (!held || --held.refs > 0) return;
  modules.delete(modulePath);
  held.lib.C_Finalize(); // closes the sessions and logs out
}

/** Opens the key a PKCS#11 URI names, logs in with the operator's PIN and returns a signer over it. */
export function openPkcs11Signer(uriText: string): TokenSigner {
  const key = parsePkcs11Uri(uriText);
  const pk = loadBinding();
  const lib = acquireModule(pk, key);
  try {
    return openOnModule(pk, lib, key);
  } catch (err) {
    releaseModule(key.modulePath);
    throw err;
  }
}

function openOnModule(pk: Pkcs11Module, lib: Pkcs11Types.PKCS11, key: Pkcs11KeyUri): TokenSigner {
  const slot = findSlot(lib, key);
  const session = lib.C_OpenSession(slot, pk.CKF_SERIAL_SESSION);
  const pin = readPin(key);
  try {
    lib.C_Login(session, pk.CKU_USER, pin);
  } catch (err) {
    const rv = (err as { code?: number }).code;
    if (rv !== pk.CKR_USER_ALREADY_LOGGED_IN) lib.C_CloseSession(session);
    if (rv !== pk.CKR_USER_ALREADY_LOGGED_IN) throw loginError(pk, key, rv);
  }
  try {
    return keySigner(pk, lib, session, key);
  } catch (err) {
    lib.C_CloseSession(session);
    throw err;
  }
}

function loginError(pk: Pkcs11Module, key: Pkcs11KeyUri, rv: number | undefined): PlaneError {
  const why =
    rv === pk.CKR_PIN_INCORRECT
      ? 'the PIN is incorrect'
      : rv === pk.CKR_PIN_LOCKED
        ? 'the PIN is locked'
        : 'login failed';
  return new PlaneError('PLANE_PKCS11_LOGIN', `${key.text}: ${why} (PIN from ${describePinSource(key)})`);
}

function keySigner(pk: Pkcs11Module, lib: Pkcs11Types.PKCS11, session: Buffer, key: Pkcs11KeyUri): TokenSigner {
  const priv = findOne(pk, lib, session, key, pk.CKO_PRIVATE_KEY);
  const [type, params] = lib.C_GetAttributeValue(session, priv, [
    { type: pk.CKA_KEY_TYPE },
    { type: pk.CKA_EC_PARAMS },
  ]);
  if (type?.value?.readUInt32LE(0) !== pk.CKK_EC || !Buffer.from(params!.value!).equals(P256_PARAMS)) {
    throw new PlaneError('PLANE_PKCS11_OBJECT', `${key.text}: the key is not an ECDSA P-256 key`);
  }
  const spkiDer = publicKeySpki(pk, lib, session, key);
  const sign = (data: Uint8Array): Buffer => {
    const digest = createHash('sha256').update(data).digest();
    lib.C_SignInit(session, { mechanism: pk.CKM_ECDSA }, priv);
    const raw = lib.C_Sign(session, digest, Buffer.alloc(64));
    return rawToDer(raw);
  };
  // Proves the private key and the public key object belong together before anything is signed with them.
  const probe = randomBytes(32);
  if (!verify('sha256', probe, createPublicKey({ key: spkiDer, format: 'der', type: 'spki' }), sign(probe))) {
    throw new PlaneError('PLANE_PKCS11_OBJECT', `${key.text}: the private key does not match its public key object`);
  }
  return {
    spkiDer,
    sign,
    close: () => {
      try {
        lib.C_CloseSession(session);
      } finally {
        releaseModule(key.modulePath);
      }
    },
  };
}

function describePinSource(key: Pkcs11KeyUri): string {
  return 'env' in key.pinSource ? `variable ${key.pinSource.env}` : `file ${key.pinSource.file}`;
}

function findSlot(lib: Pkcs11Types.PKCS11, key: Pkcs11KeyUri): Buffer {
  const matches = lib.C_GetSlotList(true).filter((slot) => {
    const info = lib.C_GetTokenInfo(slot);
    const eq = (want: string | undefined, have: string): boolean => want === undefined || want === have.trimEnd();
    return (
      eq(key.token, info.label) &&
      eq(key.manufacturer, info.manufacturerID) &&
      eq(key.model, info.model) &&
      eq(key.serial, info.serialNumber)
    );
  });
  if (matches.length !== 1) {
    throw new PlaneError(
      'PLANE_PKCS11_OBJECT',
      `${key.text}: ${matches.length === 0 ? 'no token matches' : `${matches.length} tokens match; add serial=`}`,
    );
  }
  return matches[0]!;
}

function findOne(pk: Pkcs11Module, lib: Pkcs11Types.PKCS11, session: Buffer, key: Pkcs11KeyUri, cls: number): Buffer {
  const template: Pkcs11Types.Template = [{ type: pk.CKA_CLASS, value: cls }];
  if (key.object !== undefined) template.push({ type: pk.CKA_LABEL, value: key.object });
  if (key.id !== undefined) template.push({ type: pk.CKA_ID, value: key.id });
  lib.C_FindObjectsInit(session, template);
  const found = lib.C_FindObjects(session, 2);
  lib.C_FindObjectsFinal(session);
  const what = cls === pk.CKO_PRIVATE_KEY ? 'private key' : 'public key';
  if (found.length !== 1) {
    throw new PlaneError(
      'PLANE_PKCS11_OBJECT',
      `${key.text}: ${found.length === 0 ? `no ${what} object matches` : `more than one ${what} object matches`}`,
    );
  }
  return found[0]!;
}

/** The matching CKO_PUBLIC_KEY's CKA_EC_POINT (a DER OCTET STRING around the uncompressed point) as an SPKI. */
function publicKeySpki(pk: Pkcs11Module, lib: Pkcs11Types.PKCS11, session: Buffer, key: Pkcs11KeyUri): Buffer {
  const pub = findOne(pk, lib, session, key, pk.CKO_PUBLIC_KEY);
  const [attr] = lib.C_GetAttributeValue(session, pub, [{ type: pk.CKA_EC_POINT }]);
  const point = Buffer.from(attr!.value!);
  const raw = point.length === 67 && point[0] === 0x04 && point[1] === 65 ? point.subarray(2) : point;
  if (raw.length !== 65 || raw[0] !== 0x04)
    throw new PlaneError('PLANE_PKCS11_OBJECT', `${key.text}: the public key is not an uncompressed P-256 point`);
  return Buffer.concat([P256_SPKI_PREFIX, raw]);
}

/** PKCS#11 CKM_ECDSA output r‖s → DER ECDSA-Sig-Value (what sigstore and X.509 carry). */
export function rawToDer(raw: Buffer): Buffer {
  if (raw.length !== 64) throw new PlaneError('PLANE_PKCS11_OBJECT', 'the token returned a malformed signature');
  const int = (b: Buffer): Buffer => {
    let v = b;
    while (v.length > 1 && v[0] === 0 && !(v[1]! & 0x80)) v = v.subarray(1);
    if (v[0]! & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const body = Buffer.concat([int(raw.subarray(0, 32)), int(raw.subarray(32))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}
