/**
 * A picture's 64-bit perceptual hash (pHash), for the ban list. A cryptographic hash changes with
 * every byte; pHash keeps the picture's coarse structure (the lowest spatial frequencies of its
 * brightness), which resizing, recompression, a change of format or of decode scale barely move:
 * measured on the 30 wallpaper photographs and the fixtures, copies resized to 90%, 50% or 25%,
 * recompressed as JPEG 70 or WebP 50, stored as PNG, or decoded at 1, 0.4 or 0.1 scale were all
 * within Hamming distance 2 of the original, while no two different photographs came closer than 20
 * (packages/imaging/test/fingerprint.test.ts keeps the fixtures' share of that checked).
 *
 * The variant: greyscale, 32x32 (Lanczos 3, aspect ignored), 2-D DCT-II, the 8x8 lowest frequencies.
 * The DC term is the mean brightness, far larger than the rest: it is left out of the median (so a
 * brighter copy keeps its bits) and its bit is always 0; each of the 63 others is 1 when above their
 * median. Bits in row-major order of the 8x8 block (DC first), as 16 lowercase hex digits.
 * Flat or flipped pictures are its known limits: a mirrored copy is far, and plain graphics on one
 * background (icons, logos) can be near one another.
 */
import sharp from 'sharp';

/** Pixels as decoded (`RawImage`, or any 1-4 channel 8-bit raw buffer). */
export interface RawPixels {
  data: Buffer | Uint8Array;
  width: number;
  height: number;
  channels: number;
}

const SIZE = 32;
const LOW = 8;
/** cos(π(2n+1)k / 2N) for the 8 lowest frequencies k: the DCT-II basis (its scale does not change the bits). */
const basis = Array.from({ length: LOW }, (_, k) => Float64Array.from({ length: SIZE }, (_, n) => Math.cos((Math.PI * (2 * n + 1) * k) / (2 * SIZE))));

export async function fingerprint(raw: RawPixels): Promise<string> {
  const grey = await sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels as 1 | 2 | 3 | 4 } })
    // Transparency on a fixed background, so the same picture hashes the same whatever its alpha.
    .flatten({ background: '#000000' })
    .greyscale()
    .resize(SIZE, SIZE, { fit: 'fill', kernel: 'lanczos3' })
    .raw()
    .toBuffer();
  const coefficients = lowFrequencies(grey);
  const ac = coefficients.slice(1);
  const median = [...ac].sort((a, b) => a - b)[ac.length >> 1]!;
  let bits = 0n;
  for (const c of ac) bits = (bits << 1n) | (c > median ? 1n : 0n);
  return bits.toString(16).padStart(16, '0');
}

/** The 8x8 lowest-frequency DCT-II coefficients of 32x32 pixels, row-major (vertical frequency first). */
function lowFrequencies(pixels: Uint8Array): number[] {
  // Separable: along each row first (8 frequencies of 32 rows), then down each of those 8 columns.
  const rows = Array.from({ length: SIZE }, (_, y) => basis.map((cos) => cos.reduce((sum, c, x) => sum + c * pixels[y * SIZE + x]!, 0)));
  return basis.flatMap((cos) => basis.map((_, v) => cos.reduce((sum, c, y) => sum + c * rows[y]![v]!, 0)));
}
