// The `tabr` handler: a tabr-model/1 directory on @org/tabr-native. Video goes through
// predictVideo (extraction and prediction in one native task), JSON features through predict,
// feature batches (the Open Inference Protocol) through predictBatch.
// The server-wide limits (MAX_VIDEO_SECONDS, MAX_FRAME_PIXELS, MAX_DECODED_MEGAPIXELS, MAX_FRAME_RATE) are
// given to the native load, which applies the smaller of each and the manifest's own param.
import { featureNames, loadModel, type Model, type PairSeries } from '@org/tabr-native'
import { ApiError } from '../../core/errors.js'
import type { BatchResult, HandlerFactory, HandlerOptions, InferenceInput, InferenceResult, InferOptions, ModelHandler, ModelInfo, Series, VideoSummary } from '../handler.js'

/** The 90 names, built once per process: they name the values of every response that asks for them. */
const FEATURE_NAMES = featureNames()

/** The addon's flat series (pairs × channels, row-major) as JSON rows. */
function seriesOf(s: PairSeries): Series {
  const c = s.channels.length
  return { channels: s.channels, t_s: Array.from(s.tS), values: Array.from(s.tS, (_, k) => Array.from(s.values.subarray(k * c, (k + 1) * c))) }
}

export class TabrHandler implements ModelHandler {
  private model?: Model
  private info?: ModelInfo

  constructor(
    private readonly name: string,
    private readonly opts: HandlerOptions,
  ) {}

  async load(dir: string, signal?: AbortSignal): Promise<void> {
    const { maxSeconds, maxPixels, maxDecodedPixels, maxFrameRate } = this.opts.limits
    this.model = await loadModel(dir, { provider: this.opts.ortProvider, flow: this.opts.flow, maxSeconds, maxPixels, maxDecodedPixels, maxFrameRate }, signal)
    // The addon prints nothing; what loading settled for (e.g. ORT_PROVIDER=auto on the CPU)
    // goes to the service's log.
    for (const w of this.model.warnings) this.opts.warn?.(this.name, w)
    const i = this.model.info
    // MODEL_REGISTRY's name is the one served; a different manifest name is said, not hidden.
    if (i.name !== this.name) this.opts.warn?.(this.name, `the model directory's manifest names it ${JSON.stringify(i.name)}; it is served as ${JSON.stringify(this.name)} (MODEL_REGISTRY)`)
    this.info = {
      name: this.name,
      version: i.version,
      task: i.task,
      labels: i.labels,
      n_features: i.nFeatures,
      features: i.features,
      inputs: ['video', 'features'],
      provider: i.provider,
      evidence_k: i.evidenceK,
    }
  }

  private get m(): Model {
    if (!this.model) throw new Error(`model ${this.name} is not loaded`)
    return this.model
  }

  /** Refuses, before any work, evidence asked of a model exported without it. */
  private assertEvidence(asked: boolean | undefined): void {
    if (asked && !this.describe().evidence_k)
      throw new ApiError('evidence_unavailable', `model ${JSON.stringify(this.name)} was exported without evidence outputs (re-export it with export_tabr.py to get them)`)
  }

  async infer(input: InferenceInput, signal: AbortSignal, opts: InferOptions): Promise<InferenceResult> {
    this.assertEvidence(opts.includeEvidence)
    if (input.kind === 'features') {
      const t = performance.now()
      // A typed array crosses into native code in one copy (null → NaN = missing).
      const row = Float32Array.from(input.values, (v) => (v === null ? Number.NaN : v))
      const { evidence, ...prediction } = await this.m.predict(row, signal)
      return { prediction, timings_ms: { predict: performance.now() - t }, ...(opts.includeEvidence && evidence ? { evidence } : {}) }
    }
    const r = await this.m.predictVideo(input.path, { features: opts.includeFeatures, series: opts.includeSeries }, signal)
    const meta = r.meta
    const t = meta.timingsMs
    return {
      prediction: r.prediction,
      video: {
        frames: meta.frames,
        fps: meta.fps,
        duration_s: meta.durationS,
        width: meta.width,
        height: meta.height,
        face_detect_rate: meta.faceDetectRate,
        // The core's Quality as it is (napi types its warning codes as plain strings).
        quality: meta.quality as VideoSummary['quality'],
      },
      timings_ms: { decode: t.decode, face: t.face, flow: t.flow, poc: t.poc, predict: r.predictMs },
      ...(r.features ? { features: { names: FEATURE_NAMES, values: Array.from(r.features) } } : {}),
      ...(r.series ? { series: seriesOf(r.series) } : {}),
      ...(opts.includeEvidence && r.evidence ? { evidence: r.evidence } : {}),
    }
  }

  async inferBatch(values: Float32Array, rows: number, signal: AbortSignal, opts?: { evidence?: boolean }): Promise<BatchResult> {
    this.assertEvidence(opts?.evidence)
    const b = await this.m.predictBatch(values, rows, signal, { evidence: opts?.evidence ?? false })
    return {
      rows: b.rows,
      labels: b.labels ?? undefined,
      probabilities: b.probabilities ?? undefined,
      values: b.values ?? undefined,
      evidence: b.evidence ?? undefined,
      predict_ms: b.predictMs,
    }
  }

  /** Built once at load: every response names the model version. */
  describe(): ModelInfo {
    if (!this.info) throw new Error(`model ${this.name} is not loaded`)
    return this.info
  }
}

export const tabrHandler: HandlerFactory = (name, opts) => new TabrHandler(name, opts)
