import fs from 'node:fs';

/** Why a private key file may not be used, or undefined when it is a regular file, 0600-or-stricter and ours. */
export interface PrivateKeyFileProblem {
  /** `mode` (group/world bits set), `owner` (not the process's effective uid) or `type` (not a regular file). */
  kind: 'mode' | 'owner' | 'type';
  /** Human sentence naming the file and its mode/owner; never the key material. */
  message: string;
}

/**
 * Checks a private key file before it is read: only the service's own user may read it (issue 10 §1: the issuer,
 * CA and log keys are 0600 and owned by the plane's user), so a group/world-readable key or one owned by another
 * account is refused. `what` names the key in the message. POSIX only; on Windows nothing is checked.
 */
export function privateKeyFileProblem(
  file: string,
  what: string,
  st: fs.Stats = fs.statSync(file),
): PrivateKeyFileProblem | undefined {
  if (process.platform === 'win32') return undefined;
  const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
  if (!st.isFile()) return { kind: 'type', message: `${what} ${file} is not a regular file` };
  if ((st.mode & 0o077) !== 0) {
    return {
      kind: 'mode',
      message: `${what} ${file} is readable by group/others (mode ${mode}); expected 0600 (chmod 600 ${file})`,
    };
  }
  const euid = process.geteuid?.();
  if (euid !== undefined && st.uid !== euid) {
    return {
      kind: 'owner',
      message: `${what} ${file} is owned by uid ${st.uid}, not by this service's user (uid ${euid}); only the plane's user may hold its keys`,
    };
  }
  return undefined;
}
