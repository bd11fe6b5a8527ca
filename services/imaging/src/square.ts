/**
 * The square the avatars show. One rule for every service: thumbnail renders exactly this region
 * at each square size and moderate classifies exactly it, so no square shows what the model did
 * not see. It depends on the upload's bytes alone (the same bytes give the same square in every
 * service) and is in displayed coordinates (after EXIF orientation):
 *  - it spans the short side and sits somewhere along the long side;
 *  - `centre` puts it in the middle;
 *  - `attention` puts it where libvips' attention strategy (edges, skin tones, saturation) finds
 *    the most salient region of a copy decoded with its short side at ANALYSIS_SIDE pixels, scaled
 *    back. The strategy judges a map of about 32 pixels, so a larger copy would not place it better,
 *    and a copy of a fixed size keeps the answer independent of whatever else a service decodes.
 */
import sharp from 'sharp';
import { decodeScaled, fromRaw, type Dimensions } from './decode.js';
import type { ImageLimits } from './limits.js';

export interface SquareRegion {
  left: number;
  top: number;
  size: number;
}

export type SquareCrop = 'attention' | 'centre';

const ANALYSIS_SIDE = 128;

export async function squareRegion(input: Buffer, image: Dimensions, crop: SquareCrop, limits: ImageLimits): Promise<SquareRegion> {
  const { width, height } = image;
  const size = Math.min(width, height);
  const slack = Math.max(width, height) - size;
  const at = (offset: number): SquareRegion => (width > height ? { left: offset, top: 0, size } : { left: 0, top: offset, size });
  const middle = Math.floor(slack / 2);
  if (slack === 0 || crop === 'centre') return at(middle);

  const copy = await decodeScaled(input, image, limits, Math.min(1, ANALYSIS_SIDE / size));
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

/** `region`, in `image`'s coordinates, in a copy of the image decoded at another size; inside the copy. */
export function regionIn(region: SquareRegion, image: Dimensions, copy: Dimensions): SquareRegion {
  const size = Math.max(1, Math.min(copy.width, copy.height, Math.round(region.size * Math.min(copy.width / image.width, copy.height / image.height))));
  return {
    left: Math.min(copy.width - size, Math.round((region.left * copy.width) / image.width)),
    top: Math.min(copy.height - size, Math.round((region.top * copy.height) / image.height)),
    size,
  };
}
