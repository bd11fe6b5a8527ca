/**
 * The square the avatars show. Moderate decides it and classifies exactly it, and passes it to
 * thumbnail in the approved event, which renders exactly it at each square size: no square shows
 * what the model did not see. It is in displayed coordinates (after EXIF orientation):
 *  - it spans the short side and sits somewhere along the long side;
 *  - `centre` puts it in the middle;
 *  - `attention` puts it where libvips' attention strategy (edges, skin tones, saturation) finds
 *    the most salient region of a copy with its short side at ANALYSIS_SIDE pixels, scaled back.
 *    The strategy judges a map of about 32 pixels, so a larger copy would not place it better.
 * The copy is shrunk from the pixels moderate decodes for the model (`squareRegionIn`), so deciding
 * the square costs no decode of its own. `squareRegion` decodes a copy itself: the rule moderate
 * followed before approved events carried the square, which thumbnail applies to such events.
 */
import sharp from 'sharp';
import { decodeScaled, fromRaw, type Dimensions, type RawImage } from './decode.js';
import type { ImageLimits } from './limits.js';

export interface SquareRegion {
  left: number;
  top: number;
  size: number;
}

export type SquareCrop = 'attention' | 'centre';

const ANALYSIS_SIDE = 128;

/** The square of an upload, from a small decode of its own. */
export async function squareRegion(input: Buffer, image: Dimensions, crop: SquareCrop, limits: ImageLimits): Promise<SquareRegion> {
  const short = Math.min(image.width, image.height);
  if (image.width === image.height || crop === 'centre') return squareRegionIn(undefined, image, crop);
  return squareRegionIn(await decodeScaled(input, image, limits, Math.min(1, ANALYSIS_SIDE / short)), image, crop);
}

/**
 * The square of an upload from pixels already decoded (`decoded`, the whole image at any scale),
 * so a service that decodes anyway needs no second decode: the analysis copy is shrunk from them.
 * Copies of different scales can place the square a few pixels apart, so one service decides it
 * and passes it on (moderate, in the approved event). `decoded` may be omitted when the square
 * needs no analysis (a square image, or `centre`).
 */
export async function squareRegionIn(decoded: RawImage | undefined, image: Dimensions, crop: SquareCrop): Promise<SquareRegion> {
  const { width, height } = image;
  const size = Math.min(width, height);
  const slack = Math.max(width, height) - size;
  const at = (offset: number): SquareRegion => (width > height ? { left: offset, top: 0, size } : { left: 0, top: offset, size });
  const middle = Math.floor(slack / 2);
  if (slack === 0 || crop === 'centre') return at(middle);
  if (!decoded) throw new Error('the attention square needs the decoded pixels');

  const scale = Math.min(1, ANALYSIS_SIDE / Math.min(decoded.width, decoded.height));
  const copy =
    scale < 1
      ? await fromRaw(decoded)
          .resize(Math.max(1, Math.round(decoded.width * scale)), Math.max(1, Math.round(decoded.height * scale)), { fit: 'fill' })
          .raw()
          .toBuffer({ resolveWithObject: true })
          .then(({ data, info }) => ({ data, width: info.width, height: info.height, channels: decoded.channels }))
      : decoded;
  const side = Math.min(copy.width, copy.height);
  const copySlack = Math.max(copy.width, copy.height) - side;
  // Nearly square: the copy has no room to move the square in.
  if (copySlack === 0) return at(middle);
  const { info } = await fromRaw(copy)
    .resize(side, side, { fit: 'cover', position: sharp.strategy.attention })
    .raw()
    .toBuffer({ resolveWithObject: true });
  // sharp reports the crop's offset negated.
  const offset = Math.abs((width > height ? info.cropOffsetLeft : info.cropOffsetTop) ?? 0);
  return at(Math.min(slack, Math.round((offset * slack) / copySlack)));
}

/** A square that follows the rule (it spans the short side, inside the image), e.g. from an event. */
export function isSquareOf(region: SquareRegion, image: Dimensions): boolean {
  return (
    region.size === Math.min(image.width, image.height) &&
    region.left >= 0 &&
    region.top >= 0 &&
    region.left + region.size <= image.width &&
    region.top + region.size <= image.height
  );
}

/** `region`, in `image`'s coordinates, in a copy of the image decoded at another size; inside the copy. */
export function regionIn(region: SquareRegion, image: Dimensions, copy: Dimensions): SquareRegion {
  const size = Math.max(1, Math.min(copy.width, copy.height, Math.round(region.size * Math.min(copy.width / image.width, copy.height / image.height))));
  return {
    left: Math.min(copy.width - size, Math.round((region.left * copy.width) / image.width)),
    top: Math.min(copy.height - size, Math.round((region.top * copy.height) / image.height)),
    size,
  };
}
