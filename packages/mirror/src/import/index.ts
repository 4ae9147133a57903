export * from './errors.js';
export * from './import-bundle.js';
export { validateTransferManifest } from './manifest-schema.js';
export {
  readStrictTar,
  canonicalTarHeader,
  checkEntryName,
  tarHeaderField,
  type StrictTarEntry,
} from './strict-tar.js';
