/**
 * Binary mask encodings of the widget protocol (docs/ARCHITECTURE.md, "Widget protocol").
 *
 * "bits-zlib": an H x W bool mask, row-major, 8 pixels per byte with the first pixel in the
 * most significant bit (numpy's `packbits(..., bitorder="big")`), then zlib (RFC 1950).
 * Label map: H x W uint16 little-endian, row-major (0 = no mask, k = mask k - 1), then zlib.
 */
import { unzlibSync, zlibSync } from "fflate";

export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CodecError";
  }
}

/** Anything the comm layer may hand us as a buffer. */
export type BufferLike = DataView | ArrayBuffer | ArrayBufferView;

/** A view of the bytes of `buf` without copying. */
export function asBytes(buf: BufferLike): Uint8Array {
  if (buf instanceof Uint8Array) return buf;
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  throw new CodecError(`expected a binary buffer, got ${Object.prototype.toString.call(buf)}`);
}

function checkSize(width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new CodecError(`mask size must be non-negative integers, got ${width} x ${height}`);
  }
}

function inflate(data: Uint8Array, what: string): Uint8Array {
  try {
    return unzlibSync(data);
  } catch (err) {
    throw new CodecError(`${what}: not valid zlib data (${(err as Error).message})`);
  }
}

// Byte v (first pixel in the most significant bit) -> pixels 0..3 and 4..7 as one byte each
// (0 or 1), read back as int32 words, so the words hold the right bytes on any endianness.
const UNPACK_LO = new Int32Array(256);
const UNPACK_HI = new Int32Array(256);
{
  const bytes = new Uint8Array(8);
  const pair = new Int32Array(bytes.buffer);
  for (let v = 0; v < 256; v++) {
    for (let k = 0; k < 8; k++) bytes[k] = (v >> (7 - k)) & 1;
    UNPACK_LO[v] = pair[0];
    UNPACK_HI[v] = pair[1];
  }
}

/**
 * Decode a "bits-zlib" mask into one byte per pixel (0 or 1), length width * height.
 * An empty buffer means "no mask" and gives `null`.
 */
export function decodeMask(buf: BufferLike, width: number, height: number): Uint8Array | null {
  checkSize(width, height);
  const data = asBytes(buf);
  if (data.byteLength === 0) return null;
  const packed = inflate(data, "mask");
  const n = width * height;
  const expected = Math.ceil(n / 8);
  if (packed.length !== expected) {
    throw new CodecError(
      `mask ${width} x ${height} needs ${expected} packed bytes, got ${packed.length}`,
    );
  }
  const out = new Uint8Array(n);
  const full = n >> 3; // whole bytes
  // Each packed byte -> its 8 pixels as two 32-bit stores (table built in memory order).
  const words = new Int32Array(out.buffer, out.byteOffset, full * 2);
  for (let b = 0; b < full; b++) {
    const v = packed[b];
    if (v === 0) continue;
    words[2 * b] = UNPACK_LO[v];
    words[2 * b + 1] = UNPACK_HI[v];
  }
  for (let i = full << 3; i < n; i++) out[i] = (packed[i >> 3] >> (7 - (i & 7))) & 1;
  return out;
}

/** Encode a mask (non-zero = set) as "bits-zlib". The inverse of `decodeMask`. */
export function encodeMask(mask: ArrayLike<number>, width: number, height: number): Uint8Array {
  checkSize(width, height);
  const n = width * height;
  if (mask.length !== n) {
    throw new CodecError(`mask has ${mask.length} pixels, expected ${width} x ${height} = ${n}`);
  }
  const packed = new Uint8Array(Math.ceil(n / 8));
  for (let i = 0; i < n; i++) if (mask[i]) packed[i >> 3] |= 0x80 >> (i & 7);
  return zlibSync(packed);
}

/** Decode a zlib'd uint16 little-endian label map (length width * height). */
export function decodeLabels(buf: BufferLike, width: number, height: number): Uint16Array {
  checkSize(width, height);
  const raw = inflate(asBytes(buf), "label map");
  const n = width * height;
  if (raw.length !== 2 * n) {
    throw new CodecError(`label map ${width} x ${height} needs ${2 * n} bytes, got ${raw.length}`);
  }
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = raw[2 * i] | (raw[2 * i + 1] << 8);
  return out;
}

/** Encode a label map as zlib'd uint16 little-endian. The inverse of `decodeLabels`. */
export function encodeLabels(labels: ArrayLike<number>, width: number, height: number): Uint8Array {
  checkSize(width, height);
  const n = width * height;
  if (labels.length !== n) {
    throw new CodecError(`label map has ${labels.length} pixels, expected ${n}`);
  }
  const raw = new Uint8Array(2 * n);
  for (let i = 0; i < n; i++) {
    if (!(labels[i] >= 0 && labels[i] <= 0xffff && Number.isInteger(labels[i]))) {
      throw new CodecError(`label ${labels[i]} at pixel ${i} is not a uint16`);
    }
    raw[2 * i] = labels[i] & 0xff;
    raw[2 * i + 1] = (labels[i] >> 8) & 0xff;
  }
  return zlibSync(raw);
}
