// A model's answer, and the 200 body of POST /infer/{model} built from it. Sync mode and queue
// workers make the answer with the same function, and the API builds the body with the same
// function in both modes, so the two modes answer alike.
import type { InferenceResult, ModelHandler, Prediction, VideoSummary } from './handler.js'

/** What a handler's result becomes: what a queue worker returns as the job's value. */
export interface Answer {
  model: string
  model_version: string
  prediction: Prediction
  video?: VideoSummary
  /** Stage milliseconds; queue mode adds `queue` (waiting for a worker). */
  timings_ms: Record<string, number>
  features?: InferenceResult['features']
  series?: InferenceResult['series']
  evidence?: InferenceResult['evidence']
}

/** The handler's result as an answer (its features are there only when they were asked for). */
export function answerOf(model: string, handler: ModelHandler, r: InferenceResult): Answer {
  return {
    model,
    model_version: handler.describe().version,
    prediction: r.prediction,
    ...(r.video ? { video: r.video } : {}),
    timings_ms: r.timings_ms,
    ...(r.features ? { features: r.features } : {}),
    ...(r.series ? { series: r.series } : {}),
    ...(r.evidence ? { evidence: r.evidence } : {}),
  }
}

/** The 200 body of POST /infer/{model}, the same in sync and queue modes. */
export interface InferBody extends Answer {
  request_id: string
}

export function inferBody(a: Answer, requestId: string, totalMs: number): InferBody {
  return {
    model: a.model,
    model_version: a.model_version,
    request_id: requestId,
    prediction: a.prediction,
    ...(a.video ? { video: a.video } : {}),
    timings_ms: { ...a.timings_ms, total: totalMs },
    ...(a.features ? { features: a.features } : {}),
    ...(a.series ? { series: a.series } : {}),
    ...(a.evidence ? { evidence: a.evidence } : {}),
  }
}
