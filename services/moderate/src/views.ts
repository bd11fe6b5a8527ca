/**
 * What a provider is shown of an upload, all cut from one decode: the whole image, and the square
 * the avatars show (`squareRegion`, the rule thumbnail renders by) unless that is the whole image.
 * A transparent image is shown twice, composited on black and on white: a picture can hide in the
 * alpha channel behind colour channels that are all white (or all black), while the renditions keep
 * the alpha and a client may put them on any background.
 */
import {
  decodeScaled,
  fromRaw,
  regionIn,
  squareRegion,
  type Dimensions,
  type ImageLimits,
  type RawImage,
  type SquareCrop,
} from '@avatar-pipeline/imaging';

/** How a provider takes its views: squashed to a model's square input, or scaled to fit a side. */
export type ViewShape = { fit: 'fill'; size: number } | { fit: 'inside'; maxSide: number };

export interface ModerationView {
  region: 'whole' | 'square';
  /** What a transparent image was composited on; `none` for an opaque one. */
  background: 'black' | 'white' | 'none';
  /** 8-bit sRGB, 3 channels, in the provider's shape. */
  pixels: RawImage;
}

export interface ViewOptions {
  crop: SquareCrop;
  shape: ViewShape;
  limits: ImageLimits;
}

const backgrounds = { black: '#000000', white: '#ffffff' } as const;

/** `image` is the displayed size `inspectImage` reports. A damaged image throws (every pixel is read). */
export async function moderationViews(input: Buffer, image: Dimensions, options: ViewOptions): Promise<ModerationView[]> {
  const { shape, limits } = options;
  const region = await squareRegion(input, image, options.crop, limits);
  // Large enough that the square, the short side, keeps every pixel the provider can use.
  const largest = shape.fit === 'fill' ? shape.size : shape.maxSide;
  const decoded = await decodeScaled(input, image, limits, Math.min(1, largest / Math.min(image.width, image.height)));
  const square = regionIn(region, image, decoded);

  const regions = image.width === image.height ? (['whole'] as const) : (['whole', 'square'] as const);
  const composites = isOpaque(decoded) ? (['none'] as const) : (['black', 'white'] as const);
  const views: ModerationView[] = [];
  for (const part of regions) {
    for (const background of composites) {
      let view = fromRaw(decoded);
      if (part === 'square') view = view.extract({ left: square.left, top: square.top, width: square.size, height: square.size });
      view = background === 'none' ? view.removeAlpha() : view.flatten({ background: backgrounds[background] });
      view = shape.fit === 'fill' ? view.resize(shape.size, shape.size, { fit: 'fill' }) : view.resize(shape.maxSide, shape.maxSide, { fit: 'inside', withoutEnlargement: true });
      const { data, info } = await view.raw().toBuffer({ resolveWithObject: true });
      views.push({ region: part, background, pixels: { data, width: info.width, height: info.height, channels: 3 } });
    }
  }
  return views;
}

/** No alpha channel, or one that is fully opaque everywhere (then both composites would be the same). */
function isOpaque(raw: RawImage): boolean {
  if (raw.channels === 3) return true;
  for (let i = 3; i < raw.data.length; i += 4) if (raw.data[i] !== 255) return false;
  return true;
}
