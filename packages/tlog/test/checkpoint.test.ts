import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatCheckpoint, parseCheckpoint, parseSignedNote, signNote, verifyCheckpoint } from '../src/checkpoint.js';
import { LogSigner } from '../src/signing-key.js';

const signer = new LogSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
const other = new LogSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
const root = createHash('sha256').update('root').digest();
const body = formatCheckpoint({ origin: 'rekor.corp.internal - 1234567890', size: 42, rootHash: root });

describe('checkpoints (C2SP signed note, Rekor v1 format)', () => {
  it('formats the body and signature line exactly as Rekor v1 does', () => {
    expect(body).toBe(`rekor.corp.internal - 1234567890\n42\n${root.toString('base64')}\n`);
    const note = signNote(body, 'rekor.corp.internal', signer);
    const [text, sigLine] = note.split('\n\n');
    expect(`${text}\n`).toBe(body);
    expect(sigLine).toMatch(/^\u2014 rekor\.corp\.internal [A-Za-z0-9+/]+=*\n$/);
    const raw = Buffer.from(sigLine!.trim().split(' ')[2]!, 'base64');
    // key hint = SHA-256(DER SPKI)[:4] = first 4 bytes of the log ID
    expect(raw.subarray(0, 4).toString('hex')).toBe(signer.logId.slice(0, 8));
  });

  it('round-trips and verifies with the log key (PEM, DER or KeyObject) and the expected name', () => {
    const note = signNote(body, 'rekor.corp.internal', signer);
    for (const key of [signer.publicKeyPem, signer.publicKeyDer, signer.publicKey]) {
      const cp = verifyCheckpoint(note, key, 'rekor.corp.internal');
      expect(cp).toEqual({ origin: 'rekor.corp.internal - 1234567890', size: 42, rootHash: root, otherContent: [] });
    }
    const parsed = parseSignedNote(note);
    expect(parsed.note).toBe(body);
    expect(parsed.signatures).toHaveLength(1);
    expect(parseCheckpoint(parsed.note).size).toBe(42);
  });

  it('rejects a checkpoint whose size or root was altered after signing', () => {
    const note = signNote(body, 'log', signer);
    const biggerSize = note.replace('\n42\n', '\n43\n');
    expect(() => verifyCheckpoint(biggerSize, signer.publicKey)).toThrow(/does not verify/);
    const otherRoot = note.replace(root.toString('base64'), createHash('sha256').update('x').digest('base64'));
    expect(() => verifyCheckpoint(otherRoot, signer.publicKey)).toThrow(/does not verify/);
  });

  it('rejects a checkpoint signed by another key, or under another name', () => {
    const note = signNote(body, 'log', other);
    expect(() => verifyCheckpoint(note, signer.publicKey)).toThrow(/no signature by the log key/);
    // The right hint but a signature by another key.
    const forged = `${body}\n\u2014 log ${Buffer.concat([signer.keyHint, other.sign(Buffer.from(body))]).toString('base64')}\n`;
    expect(() => verifyCheckpoint(forged, signer.publicKey)).toThrow(/does not verify/);
    expect(() => verifyCheckpoint(signNote(body, 'log', signer), signer.publicKey, 'another-name')).toThrow(
      /expected key name/,
    );
  });

  it('accepts extra signature lines from other keys (witness cosignatures)', () => {
    const note = signNote(body, 'log', signer);
    const witness = `\u2014 witness ${Buffer.concat([other.keyHint, sign('sha256', Buffer.from(body), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)]).toString('base64')}\n`;
    expect(verifyCheckpoint(note + witness, signer.publicKey).size).toBe(42);
  });

  it('rejects malformed notes with clear errors', () => {
    const good = signNote(body, 'log', signer);
    const cases: Array<[string, RegExp]> = [
      ['no separator', /no blank line/],
      [good.replace('\u2014', '-'), /does not start with/],
      [good.slice(0, -1), /end with a newline/],
      [good.replace('\n42\n', '\n042\n'), /invalid tree size/],
      [good.replace('\n42\n', '\n-1\n'), /invalid tree size/],
      [good.replace(root.toString('base64'), 'AAAA'), /root hash/],
      [`a\nb\n\n\u2014 log AAAAAAAA\n`, /origin, size and root/],
      [`${body}\n\u2014 log AAA=\n`, /too short/],
      [`${body}\n\u2014 lo g AAAAAAAA\n`, /not '— <name> <signature>'/],
      ['x'.repeat(70_000), /larger than/],
    ];
    for (const [note, message] of cases) expect(() => verifyCheckpoint(note, signer.publicKey)).toThrow(message);
  });

  it('refuses to sign with an invalid key name or produce an invalid body', () => {
    expect(() => signNote(body, 'has space', signer)).toThrow(/key name/);
    expect(() => signNote(body, 'a+b', signer)).toThrow(/key name/);
    expect(() => formatCheckpoint({ origin: 'a\nb', size: 1, rootHash: root })).toThrow(/origin/);
    expect(() => formatCheckpoint({ origin: 'a', size: -1, rootHash: root })).toThrow(/size/);
  });
});
