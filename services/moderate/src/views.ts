/**
 * What a provider is shown of an upload, all cut from one decode: the whole image, and the square
 * the avatars show unless that is the whole image. The same decode decides that square
 * (`squareRegionIn`), which goes to thumbnail in the approved event, and is moderate's integrity
 * check: any decoder warning fails it, and at a `strictScale` a damaged image fails here as it
 * would in a full-size decode (test/hostile.test.ts).
 * A transparent image is shown twice, composited on black and on white: a picture can hide in the
 * alpha channel behind colour channels that are all white (or all black), while the renditions keep
 * the alpha and a client may put them on any background.
 */
import {
  decodeScaled,
  fromRaw,
  regionIn,
  squareRegionIn,
  strictScale,
  type Dimensions,
  type ImageFormat,
  type ImageLimits,
  type RawImage,
  type SquareCrop,
  type SquareRegion,
} from '@avatar-pipeline/imaging';

/** How a provider takes its views: squashed to a model's square input, or scaled to fit a side. */
export type ViewShape = { fit: 'fill'; size: number } | { fit: 'inside'; maxSide: number };

export const viewRegions = ['whole', 'square'] as const;
/** What a transparent image was composited on; `none` for an opaque one. */
export const viewBackgrounds = ['black', 'white', 'none'] as const;

export interface ModerationView {
  region: (typeof viewRegions)[number];
  background: (typeof viewBackgrounds)[number];
  /** 8-bit sRGB, 3 channels, in the provider's shape. */
  pixels: RawImage;
}

export interface ViewOptions {
  crop: SquareCrop;
  shape: ViewShape;
  limits: ImageLimits;
}

const backgrounds = { black: '#000000', white: '#ffffff' } as const;

export interface ModerationDecode {
  views: ModerationView[];
  /** The decoded pixels the views were cut from (at a reduced scale): what the fingerprint is taken of. */
  decoded: RawImage;
  /** The avatar square, in `image`'s coordinates. */
  square: SquareRegion;
}

/** `image` is what `inspectImage` reports (the displayed size). A damaged image throws. */
export async function decodeForModeration(input: Buffer, image: Dimensions & { format: ImageFormat }, options: ViewOptions): Promise<ModerationDecode> {
  const { shape, limits } = options;
  // Large enough that the square, the short side, keeps every pixel the provider can use, and strict.
  const largest = shape.fit === 'fill' ? shape.size : shape.maxSide;
  const decoded = await decodeScaled(input, image, limits, strictScale(image.format, largest / Math.min(image.width, image.height)));
  const region = await squareRegionIn(decoded, image, options.crop);
  const cut = regionIn(region, image, decoded);

  const regions = image.width === image.height ? (['whole'] as const) : (['whole', 'square'] as const);
  const composites = isOpaque(decoded) ? (['none'] as const) : (['black', 'white'] as const);
  const views: ModerationView[] = [];
  for (const part of regions) {
    for (const background of composites) {
      let view = fromRaw(decoded);
      if (part === 'square') view = view.extract({ left: cut.left, top: cut.top, width: cut.size, height: cut.size });
      view = background === 'none' ? view.removeAlpha() : view.flatten({ background: backgrounds[background] });
      view = shape.fit === 'fill' ? view.resize(shape.size, shape.size, { fit: 'fill' }) : view.resize(shape.maxSide, shape.maxSide, { fit: 'inside', withoutEnlargement: true });
      const { data, info } = await view.raw().toBuffer({ resolveWithObject: true });
      views.push({ region: part, background, pixels: { data, width: info.width, height: info.height, channels: 3 } });
    }
  }
  return { views, decoded, square: region };
}

/** No alpha channel, or one that is fully opaque everywhere (then both composites would be the same). */
function isOpaque(raw: RawImage): boolean {
  if (raw.channels === 3) return true;
  for (let i = 3; i < raw.data.length; i += 4) if (raw.data[i] !== 255) return false;
  return true;
}
