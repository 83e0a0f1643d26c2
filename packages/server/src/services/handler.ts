// The handler contract. A handler owns its model: loading, preprocessing and inference.
// Routes and executors never look inside payloads; they pass an InferenceInput in and an
// InferenceResult out. (DESIGN.md splits preprocess/predict; here one `infer` call lets a
// handler run extraction and prediction as a single native task, with the model's own
// feature parameters.)
import type { Evidence } from '@org/tabr-native'
import type { VideoLimits } from '../core/config.js'
import type { NativeVideoSummary } from '../core/native.generated.js'

export type InferenceInput = { kind: 'video'; path: string } | { kind: 'features'; values: (number | null)[] }

export interface Prediction {
  label?: string
  probabilities?: number[]
  value?: number
}

/** An answer's `video` object: the core's own shape (tabr_core::VideoSummary, generated). */
export type VideoSummary = NativeVideoSummary

export interface InferOptions {
  /** Return the feature vector with the prediction (`?include=features`). */
  includeFeatures: boolean
  /** Return the per-pair channels with the prediction (`?include=series`). */
  includeSeries: boolean
  /** Return the training rows the prediction drew on and its novelty (`?include=evidence`);
   * refused (400 evidence_unavailable) for a model exported without evidence outputs. */
  includeEvidence: boolean
}

/** The 18 channels of every frame pair (`?include=series`): when and where the face moved. */
export interface Series {
  channels: string[]
  /** Each pair's time, seconds (its later frame). */
  t_s: number[]
  /** Per pair, the channel values in `channels` order. */
  values: number[][]
}

export interface InferenceResult {
  prediction: Prediction
  video?: VideoSummary
  /** Stage milliseconds: decode, face, flow, poc, predict (and total, set by the executor). */
  timings_ms: Record<string, number>
  /** Set only when InferOptions.includeFeatures asked for it. */
  features?: { names: string[]; values: number[] }
  /** Set only when InferOptions.includeSeries asked for it. */
  series?: Series
  /** Set only when InferOptions.includeEvidence asked for it. */
  evidence?: Evidence
}

/** A batch's predictions, one entry per row in row order, as flat arrays. */
export interface BatchResult {
  rows: number
  /** Classifiers: each row's most probable label. */
  labels?: string[]
  /** Classifiers: row-major `rows × labels.length`. */
  probabilities?: Float64Array
  /** Regression: each row's value. */
  values?: Float64Array
  /** Each row's evidence, when asked for. */
  evidence?: Evidence[]
  /** Milliseconds of preprocessing and the model. */
  predict_ms: number
}

export interface ModelInfo {
  name: string
  version: string
  task: string
  labels: string[]
  n_features: number
  features: { name: string; version: number }
  inputs: string[]
  provider: string
  /** Neighbours an answer's `evidence` lists; 0: the model was exported without evidence outputs. */
  evidence_k: number
}

export interface ModelHandler {
  /** Loads the model directory (once). Throws with a clear message on a bad directory. */
  load(dir: string, signal?: AbortSignal): Promise<void>
  /**
   * Runs one inference; `signal` aborts native work (timeouts). The feature values are
   * returned only when `opts.includeFeatures` asks for them (they stay native otherwise).
   */
  infer(input: InferenceInput, signal: AbortSignal, opts: InferOptions): Promise<InferenceResult>
  /**
   * Predicts `rows` feature vectors, row-major in `values` (NaN = missing), in one native
   * call; each row gets what `infer` would give it alone.
   */
  inferBatch(values: Float32Array, rows: number, signal: AbortSignal, opts?: { evidence?: boolean }): Promise<BatchResult>
  /** Public metadata (never a filesystem path). Valid after load. */
  describe(): ModelInfo
}

export interface HandlerOptions {
  ortProvider: string
  /** The flow implementation the models' extractors use (FLOW). */
  flow?: 'rust' | 'opencv'
  /** Server-wide caps over the model's own extraction params (MAX_VIDEO_SECONDS, …). */
  limits: VideoLimits
  /** Where a handler reports what loading had to settle for (the service's log). */
  warn?: (model: string, message: string) => void
}

export type HandlerFactory = (name: string, opts: HandlerOptions) => ModelHandler
