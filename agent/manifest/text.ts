import { StewardError } from '../errors.js';

/** The largest manifest file a host (or `steward validate`) reads; larger ones are an error. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * A manifest file's bytes as text, or the error that names why not: larger than
 * MAX_MANIFEST_BYTES, or not UTF-8 (the line and byte of the first bad sequence). Content that is
 * not text belongs in a `source` file, which is written byte for byte. Pure.
 */
export function decodeManifest(path: string, bytes: Uint8Array): { text: string } | { error: StewardError } {
  if (bytes.length > MAX_MANIFEST_BYTES)
    return {
      error: new StewardError('E_MANIFEST_PARSE', `file is larger than ${MAX_MANIFEST_BYTES} bytes (${bytes.length})`, {
        file: path,
      }),
    };
  try {
    return { text: utf8.decode(bytes) };
  } catch {
    const at = firstInvalidUtf8(bytes);
    let line = 1;
    for (let i = 0; i < at; i++) if (bytes[i] === 0x0a) line += 1;
    const message = `not valid UTF-8 (byte ${at}); manifests are UTF-8 text, put binary content in a file named by "source"`;
    return { error: new StewardError('E_MANIFEST_PARSE', message, { file: path, line }) };
  }
}

/** Offset of the first byte that does not start a well-formed UTF-8 sequence. */
function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    const n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (n < 0) return i;
    if (n > 0 && !utf8Ok(b.subarray(i, i + n + 1))) return i;
    i += n + 1;
  }
  return b.length;
}

function utf8Ok(seq: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(seq);
    return true;
  } catch {
    return false;
  }
}
