// The page's calls to the service (same origin): the bearer token in the Authorization header
// only, never in a URL. A 401 surfaces as Unauthorized so the page asks for the token again;
// every other error as ServiceError with the service's stable code (never shown raw).
// Uploads use XMLHttpRequest because fetch reports no upload progress.

import type { NativeVideoSummary } from '../../server/src/core/native.generated.js'

export class Unauthorized extends Error {}

export class ServiceError extends Error {
  constructor(
    readonly code: string,
    readonly retryAfterS?: number,
  ) {
    super(code)
  }
}

export interface ModelEntry {
  name: string
  version?: string
  task?: string
  labels?: string[]
  /** Neighbours an answer's evidence lists; 0 or absent: the model has no evidence outputs. */
  evidence_k?: number
  loaded?: false
}

/** The training rows a prediction drew on, and how unlike the training clips this one is. */
export interface Evidence {
  neighbours: { id: string; label?: string; value?: number; weight: number; distance: number }[]
  novelty: number
}

export interface Answer {
  model: string
  model_version: string
  prediction: { label?: string; probabilities?: number[]; value?: number }
  video?: NativeVideoSummary
  series?: { channels: string[]; t_s: number[]; values: number[][] }
  evidence?: Evidence
}

export interface PageConfig {
  max_video_seconds: number
  max_upload_mb: number
}

const TOKEN_KEY = 'tabr-serve.token'
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? undefined,
  set: (t: string) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
}

function errorOf(status: number, text: string, retryAfter: string | null): Error {
  if (status === 401) return new Unauthorized()
  let code = 'internal'
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown } }
    if (typeof body.error?.code === 'string') code = body.error.code
  } catch {
    // not the service's JSON (a proxy's page): a generic sentence
  }
  const retry = retryAfter === null ? undefined : Number(retryAfter)
  return new ServiceError(code, retry !== undefined && Number.isFinite(retry) ? retry : undefined)
}

async function getJson<T>(path: string, auth: boolean): Promise<T> {
  const t = token.get()
  const r = await fetch(path, { headers: auth && t ? { Authorization: `Bearer ${t}` } : {} })
  const text = await r.text()
  if (!r.ok) throw errorOf(r.status, text, r.headers.get('Retry-After'))
  return JSON.parse(text) as T
}

export const listModels = async () => (await getJson<{ models: ModelEntry[] }>('/models', true)).models
export const pageConfig = () => getJson<PageConfig>('/app/config.json', false)
export const questions = async () => (await getJson<{ questions: string[] }>('/app/questions.json', false)).questions

/** POST /infer/{model}?include=series (and evidence, when the model has it) with the video as
 * multipart; progress in 0..1. */
export function infer(model: ModelEntry, video: Blob, filename: string, onProgress: (fraction: number) => void): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', `/infer/${encodeURIComponent(model.name)}?include=series${model.evidence_k ? ',evidence' : ''}`)
    const t = token.get()
    if (t) xhr.setRequestHeader('Authorization', `Bearer ${t}`)
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total)
    xhr.onload = () => {
      if (xhr.status === 200) {
        try {
          return resolve(JSON.parse(xhr.responseText) as Answer)
        } catch {
          return reject(new ServiceError('internal'))
        }
      }
      reject(errorOf(xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After')))
    }
    xhr.onerror = () => reject(new ServiceError('request_timeout'))
    const form = new FormData()
    form.append('video', video, filename)
    xhr.send(form)
  })
}
