/**
 * The embedded provider: the NSFWJS image classifier bundled in the `nsfwjs` package, run with
 * TensorFlow.js on the WASM backend (the plain CPU backend is about 18x slower). Everything is
 * read from disk (the model bundles in node_modules/nsfwjs/dist/models and the backend's .wasm
 * files): no network at start-up or run time. The model loads once; inference runs one upload at
 * a time. It is shown each view moderate decoded (the whole image and the avatar square, each on
 * black and on white when transparent) squashed to its square input, as it was trained, all of an
 * upload's views in one batch; the worst view decides.
 *
 * NSFWJS classes map onto Rekognition taxonomy v7 top-level labels, so one policy serves both
 * providers:
 *   Porn + Hentai -> Explicit (the classes are exclusive, so their sum is P(explicit); Hentai is
 *                    illustrated explicit content, which v7 reports as the same label)
 *   Sexy          -> Non-Explicit Nudity of Intimate parts and Kissing
 *   Neutral, Drawing -> no label
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { load, type ModelDefinition, type NSFWJS } from 'nsfwjs/core';
import { InceptionV3Model } from 'nsfwjs/models/inception_v3';
import { MobileNetV2Model } from 'nsfwjs/models/mobilenet_v2';
import { MobileNetV2MidModel } from 'nsfwjs/models/mobilenet_v2_mid';
import type { RawImage } from '@avatar-pipeline/imaging';
import type { ModerationLabel } from '@avatar-pipeline/kit/events';
import { worstLabels, type ModerationInput, type ModerationProvider } from './provider.js';
import { serialRunner } from './serial.js';

export type NsfwjsModelName = 'MobileNetV2' | 'MobileNetV2Mid' | 'InceptionV3';

const definitions: Record<NsfwjsModelName, ModelDefinition> = {
  MobileNetV2: MobileNetV2Model,
  MobileNetV2Mid: MobileNetV2MidModel,
  InceptionV3: InceptionV3Model,
};

export const nsfwClasses = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'] as const;
export type NsfwClass = (typeof nsfwClasses)[number];
export type ClassScores = Record<NsfwClass, number>;

/** nsfwjs classes -> v7 labels (a label's confidence is the sum of its classes' probabilities). */
export const nsfwjsLabelMap: readonly { label: string; classes: readonly NsfwClass[] }[] = [
  { label: 'Explicit', classes: ['Porn', 'Hentai'] },
  { label: 'Non-Explicit Nudity of Intimate parts and Kissing', classes: ['Sexy'] },
];

export interface NsfwjsOptions {
  model: NsfwjsModelName;
  /** Labels under this confidence (0-100) are not reported, as Rekognition's MinConfidence. */
  minConfidence: number;
}

export interface NsfwjsProvider extends ModerationProvider {
  /** The model's probability for each class (they sum to 1) for one view: RGB, `inputSize` square. */
  classify(view: RawImage): Promise<ClassScores>;
  /**
   * The same for several views in one run of the model (a batch): the scores `classify` gives each,
   * for about 12% less CPU than a run per view (MobileNetV2, two views, WASM backend). `moderate`
   * shows the model an upload's views this way.
   */
  classifyAll(views: readonly RawImage[]): Promise<ClassScores[]>;
  /** Square input size of the loaded model in pixels. */
  readonly inputSize: number;
}

let backend: Promise<void> | undefined;

/** Selects the WASM backend once per process, loading its binaries from the package on disk. */
function useWasmBackend(): Promise<void> {
  return (backend ??= (async () => {
    const require = createRequire(import.meta.url);
    const wasmDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    setWasmPaths(`${wasmDir}/`);
    if (!(await tf.setBackend('wasm'))) throw new Error('the TensorFlow.js WASM backend could not start');
    await tf.ready();
  })());
}

export async function loadNsfwjsProvider(options: NsfwjsOptions): Promise<NsfwjsProvider> {
  await useWasmBackend();
  const model: NSFWJS = await load(options.model, { modelDefinitions: [definitions[options.model]] });
  const shape = model.model.inputs[0]?.shape;
  if (typeof shape?.[1] !== 'number') throw new Error(`model ${options.model} has no fixed input size`);
  const inputSize = shape[1];
  const serially = serialRunner();

  function checkInput(view: RawImage): void {
    if (view.width !== inputSize || view.height !== inputSize || view.channels !== 3) {
      throw new Error(`the model takes ${inputSize}x${inputSize} RGB pixels, not ${view.width}x${view.height}x${view.channels}`);
    }
  }

  async function classify(view: RawImage): Promise<ClassScores> {
    checkInput(view);
    return serially(async () => {
      const input = tf.tensor3d(view.data, [inputSize, inputSize, 3], 'int32');
      try {
        const predictions = await model.classify(input, nsfwClasses.length);
        const scores = Object.fromEntries(nsfwClasses.map((c) => [c, 0])) as ClassScores;
        for (const p of predictions) scores[p.className as NsfwClass] = p.probability;
        return scores;
      } finally {
        input.dispose();
      }
    });
  }

  /**
   * One batch through the model, prepared as nsfwjs's `classify` prepares a single image (pixels
   * / 255; the views are already the input size, so nothing is resized): its output rows are the
   * class probabilities in nsfwjs's class order, which `nsfwClasses` follows.
   */
  async function classifyAll(views: readonly RawImage[]): Promise<ClassScores[]> {
    views.forEach(checkInput);
    if (views.length === 0) return [];
    return serially(async () => {
      const pixels = tf.tensor4d(Buffer.concat(views.map((view) => view.data)), [views.length, inputSize, inputSize, 3], 'int32');
      try {
        const output = tf.tidy(() => model.model.predict(pixels.toFloat().div(255)) as tf.Tensor);
        try {
          const values = await output.data();
          if (values.length !== views.length * nsfwClasses.length) throw new Error(`the model gave ${values.length} values for ${views.length} views`);
          return views.map((_, i) => Object.fromEntries(nsfwClasses.map((c, k) => [c, values[i * nsfwClasses.length + k]!])) as ClassScores);
        } finally {
          output.dispose();
        }
      } finally {
        pixels.dispose();
      }
    });
  }

  return {
    name: 'nsfwjs',
    inputSize,
    viewShape: { fit: 'fill', size: inputSize },
    classify,
    classifyAll,
    async moderate(input: ModerationInput): Promise<ModerationLabel[]> {
      const scores = await classifyAll(input.views.map((view) => view.pixels));
      return worstLabels(scores.map((s) => labelsFromScores(s, options.minConfidence)));
    },
    close() {
      model.dispose();
    },
  };
}

/** v7 labels for a set of class scores, keeping those at or above `minConfidence`. */
export function labelsFromScores(scores: ClassScores, minConfidence: number): ModerationLabel[] {
  const labels: ModerationLabel[] = [];
  for (const { label, classes } of nsfwjsLabelMap) {
    const probability = classes.reduce((sum, c) => sum + scores[c], 0);
    const confidence = Math.min(100, Math.round(probability * 10_000) / 100);
    if (confidence >= minConfidence) labels.push({ name: label, confidence });
  }
  return labels;
}
