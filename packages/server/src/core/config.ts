// Service configuration: every variable of DESIGN.md, validated once at start-up (envalid).
// `.env` is read when present. A bad value stops start-up with one line that names the
// variable, e.g. MODEL_REGISTRY entry 2 ("x:y"): expected name:handler:dir.
import { availableParallelism } from 'node:os'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { config as readDotenv } from 'dotenv'
import { bool, cleanEnv, makeValidator, num, str, EnvError, EnvMissingError } from 'envalid'

/** What the service calls itself in metadata (OpenAPI, the Open Inference Protocol's `GET /v2`). */
export const SERVICE_NAME = 'tabr-serve'
/** The service's version: package.json's (a test holds them equal). */
export const SERVICE_VERSION = '0.1.0'

/** The `.env.example` placeholder: refused as a token. */
export const PLACEHOLDER_TOKEN = 'replace-me-with-a-random-token-of-48-characters!'

export interface RegistryEntry {
  name: string
  handler: string
  dir: string
}

export class ConfigError extends Error {}

/** WEB_QUESTIONS_FILE: `{"questions": [1 to 100 non-empty strings of at most 500 characters]}`. */
function readQuestions(path: string): string[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch {
    throw new ConfigError('WEB_QUESTIONS_FILE: cannot be read as JSON')
  }
  const qs = (parsed as { questions?: unknown } | null)?.questions
  if (!Array.isArray(qs) || qs.length < 1 || qs.length > 100 || !qs.every((q) => typeof q === 'string' && q.trim().length > 0 && q.length <= 500)) {
    throw new ConfigError('WEB_QUESTIONS_FILE: expected {"questions": [...]} with 1 to 100 non-empty strings of at most 500 characters')
  }
  return qs as string[]
}

/**
 * Server-wide caps on the extraction, passed to every model load: the effective limit is the
 * smaller of the cap and the model manifest's own param. `maxDecodedPixels` bounds the
 * decoding work of one request (decoded frames × pixels per frame), which a tiny upload of
 * many small-to-encode frames could otherwise make huge; `maxFrameRate` bounds its frames
 * (maxFrameRate × maxSeconds), since most of the work is per frame whatever its size.
 */
export interface VideoLimits {
  maxSeconds: number
  maxPixels: number
  maxDecodedPixels: number
  maxFrameRate: number
}

/** The demo models (poc-abs v1 and v2), relative to the working directory (the repository root
 * for make run). */
export const DEFAULT_REGISTRY = 'tabr-demo:tabr:models/tabr-demo,tabr-demo-v2:tabr:models/tabr-demo-v2'

const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/

export function parseRegistry(raw: string): RegistryEntry[] {
  const entries = raw.split(',').map((s) => s.trim())
  const seen = new Set<string>()
  return entries.map((entry, i) => {
    const parts = entry.split(':')
    const where = `MODEL_REGISTRY entry ${i + 1} (${JSON.stringify(entry)})`
    if (parts.length < 3 || parts.some((p) => p === '')) throw new ConfigError(`${where}: expected name:handler:dir`)
    const [name, handler, ...rest] = parts as [string, string, ...string[]]
    if (!NAME.test(name)) throw new ConfigError(`${where}: the name must be lowercase letters, digits, - or _`)
    if (seen.has(name)) throw new ConfigError(`${where}: the name ${name} is used twice`)
    seen.add(name)
    return { name, handler, dir: rest.join(':') }
  })
}

/** CALLBACK_ALLOWED_HOSTS: `host` or `host:port` entries, compared lowercase. */
export function parseCallbackHosts(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean)
    .map((h, i) => {
      if (!/^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/.test(h)) throw new ConfigError(`CALLBACK_ALLOWED_HOSTS entry ${i + 1} (${JSON.stringify(h)}): expected host or host:port`)
      return h
    })
}

export function parseTokens(raw: string): string[] {
  const tokens = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (tokens.length === 0) throw new ConfigError('AI_API_TOKEN: at least one token is needed')
  tokens.forEach((t, i) => {
    if (t === PLACEHOLDER_TOKEN) throw new ConfigError(`AI_API_TOKEN token ${i + 1}: the .env.example placeholder is not a token (make run generates one)`)
    if (t.length < 32) throw new ConfigError(`AI_API_TOKEN token ${i + 1}: tokens need at least 32 characters`)
  })
  return tokens
}

const validator = <T>(parse: (raw: string) => T) =>
  makeValidator<T>((raw) => {
    try {
      return parse(raw)
    } catch (e) {
      throw new EnvError(e instanceof Error ? e.message : String(e))
    }
  })

const portOrZero = makeValidator<number>((raw) => {
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new EnvError('must be a port number (0 picks a free one)')
  return n
})

const positive = makeValidator<number>((raw) => {
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new EnvError('must be a positive number')
  return n
})

/** The most bytes a token file may hold (a few hundred tokens): anything bigger is not one. */
const TOKEN_FILE_MAX = 64 * 1024

/**
 * AI_API_TOKEN_FILE: the tokens from a file (a container secret, /run/secrets/...), so they
 * never sit in the environment, an image or a compose file. One of the two may be set, not
 * both. The file's content is never echoed: a bad token is named by its position only.
 */
export function tokensFromFile(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const file = env.AI_API_TOKEN_FILE
  if (!file) return env
  if (env.AI_API_TOKEN) throw new ConfigError('AI_API_TOKEN and AI_API_TOKEN_FILE: set one of them, not both')
  let raw: string
  try {
    const st = statSync(file)
    if (!st.isFile() || st.size > TOKEN_FILE_MAX) throw new Error('not a small regular file')
    raw = readFileSync(file, 'utf8')
  } catch {
    throw new ConfigError(`AI_API_TOKEN_FILE: the file cannot be read as tokens (a regular file of at most ${TOKEN_FILE_MAX} bytes)`)
  }
  // One token per line or comma-separated; surrounding blank lines (a trailing newline) go.
  return {
    ...env,
    AI_API_TOKEN: raw
      .split(/[\r\n,]+/)
      .filter((t) => t.trim())
      .join(','),
  }
}

/** `worker` processes serve no HTTP, so they need no AI_API_TOKEN. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, { dotenv = true, role = 'api' as 'api' | 'worker' } = {}) {
  if (dotenv && existsSync('.env')) readDotenv({ path: '.env', quiet: true, processEnv: env as Record<string, string> })
  env = tokensFromFile(env)
  const cores = availableParallelism()
  const spec = {
    AI_API_TOKEN:
      role === 'api'
        ? validator(parseTokens)({ desc: 'bearer tokens, comma-separated (rotation), each ≥ 32 chars' })
        : validator((raw) => (raw ? parseTokens(raw) : []))({ default: '' as unknown as string[] }),
    MODEL_REGISTRY: str({ default: DEFAULT_REGISTRY, desc: 'name:handler:dir[,…]' }),
    HOST: str({ default: '127.0.0.1' }),
    PORT: portOrZero({ default: 8000, desc: '0 picks a free port' }),
    EXECUTION_MODE: str({ choices: ['sync', 'queue'], default: 'sync' }),
    REDIS_URL: str({ default: 'redis://127.0.0.1:6379' }),
    MODEL_LOADING: str({ choices: ['eager', 'lazy'], default: 'eager' }),
    MAX_UPLOAD_MB: positive({ default: 64 }),
    MAX_VIDEO_SECONDS: positive({ default: 10.5, desc: "server-wide cap over each model's max_seconds" }),
    MAX_FRAME_PIXELS: positive({ default: 1920 * 1080, desc: "server-wide cap over each model's max_pixels (width × height)" }),
    MAX_DECODED_MEGAPIXELS: positive({ default: 1306, desc: 'decoding work per request: frames × pixels, in millions (1306 ≈ 1080p × 60 fps × 10.5 s)' }),
    MAX_FRAME_RATE: positive({ default: 120, desc: 'frames per second of MAX_VIDEO_SECONDS a video may hold: more frames are video_too_large (120 × 10.5 s = 1260 frames)' }),
    CONCURRENCY: num({ default: cores }),
    MAX_PENDING: num({ default: cores * 4 }),
    FEATURE_CONCURRENCY: num({ default: cores, desc: 'feature-vector (JSON) inferences at once, admitted apart from videos' }),
    FEATURE_MAX_PENDING: num({ default: 256, desc: 'feature-vector inferences that may wait' }),
    MAX_BATCH_ROWS: num({ default: 1024, desc: 'rows of one Open Inference Protocol request (POST /v2/models/{name}/infer)' }),
    REQUEST_TIMEOUT_S: positive({ default: 30 }),
    SHUTDOWN_TIMEOUT_S: positive({ default: 20 }),
    CORS_ORIGINS: str({ default: '' }),
    WEB_QUESTIONS_FILE: str({ default: '', desc: 'a JSON file {"questions": [...]} the browser client at /app/ asks from (default: its own list)' }),
    LOG_LEVEL: str({ choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' }),
    ORT_PROVIDER: str({ choices: ['cpu', 'cuda', 'auto'], default: 'cpu' }),
    FLOW: str({ choices: ['rust', 'opencv'], default: 'rust', desc: "optical flow: ours (rust) or OpenCV's; both give the spec's numbers" }),
    METRICS_PUBLIC: bool({ default: false }),
    CALLBACK_SECRET: str({ default: '' }),
    CALLBACK_ALLOWED_HOSTS: str({ default: '' }),
    JOB_TTL_S: positive({ default: 3600 }),
    JOB_LOCK_S: positive({ default: 5, desc: 'queue mode: a worker lock lasts this long; a dead worker is noticed within about 2× it' }),
  }
  const c = cleanEnv(env, spec, {
    reporter: ({ errors }) => {
      const [key, err] = Object.entries(errors)[0] ?? []
      if (!key) return
      const msg = err instanceof EnvMissingError ? 'is required (see .env.example)' : (err?.message ?? 'is invalid')
      throw new ConfigError(msg.startsWith(key) || msg.startsWith('MODEL_REGISTRY') ? msg : `${key}: ${msg}`)
    },
  })
  const registry = parseRegistry(c.MODEL_REGISTRY)
  const webQuestions = c.WEB_QUESTIONS_FILE ? readQuestions(c.WEB_QUESTIONS_FILE) : undefined
  const callbackHosts = parseCallbackHosts(c.CALLBACK_ALLOWED_HOSTS)
  if (callbackHosts.length && c.CALLBACK_SECRET.length < 32)
    throw new ConfigError('CALLBACK_SECRET: callbacks are allowed (CALLBACK_ALLOWED_HOSTS), so a secret of at least 32 characters is needed to sign them')
  if (!Number.isInteger(c.CONCURRENCY) || c.CONCURRENCY < 1) throw new ConfigError('CONCURRENCY: must be a whole number ≥ 1')
  if (!Number.isInteger(c.MAX_PENDING) || c.MAX_PENDING < 0) throw new ConfigError('MAX_PENDING: must be a whole number ≥ 0')
  if (!Number.isInteger(c.FEATURE_CONCURRENCY) || c.FEATURE_CONCURRENCY < 1) throw new ConfigError('FEATURE_CONCURRENCY: must be a whole number ≥ 1')
  if (!Number.isInteger(c.FEATURE_MAX_PENDING) || c.FEATURE_MAX_PENDING < 0) throw new ConfigError('FEATURE_MAX_PENDING: must be a whole number ≥ 0')
  if (!Number.isInteger(c.MAX_BATCH_ROWS) || c.MAX_BATCH_ROWS < 1 || c.MAX_BATCH_ROWS > 65536) throw new ConfigError('MAX_BATCH_ROWS: must be a whole number from 1 to 65536')
  if (!Number.isInteger(c.MAX_FRAME_PIXELS)) throw new ConfigError('MAX_FRAME_PIXELS: must be a whole number of pixels')
  if (c.MAX_FRAME_RATE < 1 || c.MAX_FRAME_RATE > 10000) throw new ConfigError('MAX_FRAME_RATE: must be from 1 to 10000 frames per second')
  return {
    tokens: c.AI_API_TOKEN,
    registry,
    host: c.HOST,
    port: c.PORT,
    executionMode: c.EXECUTION_MODE as 'sync' | 'queue',
    redisUrl: c.REDIS_URL,
    modelLoading: c.MODEL_LOADING as 'eager' | 'lazy',
    maxUploadBytes: Math.floor(c.MAX_UPLOAD_MB * 1024 * 1024),
    /** Server-wide caps over every model manifest's extraction params (the smaller one wins). */
    limits: {
      maxSeconds: c.MAX_VIDEO_SECONDS,
      maxPixels: c.MAX_FRAME_PIXELS,
      maxDecodedPixels: Math.round(c.MAX_DECODED_MEGAPIXELS * 1e6),
      maxFrameRate: c.MAX_FRAME_RATE,
    } satisfies VideoLimits,
    concurrency: c.CONCURRENCY,
    maxPending: c.MAX_PENDING,
    featureConcurrency: c.FEATURE_CONCURRENCY,
    featureMaxPending: c.FEATURE_MAX_PENDING,
    maxBatchRows: c.MAX_BATCH_ROWS,
    requestTimeoutMs: c.REQUEST_TIMEOUT_S * 1000,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT_S * 1000,
    /** The browser client's questions (WEB_QUESTIONS_FILE), when the researcher gave their own. */
    webQuestions,
    corsOrigins: c.CORS_ORIGINS.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    logLevel: c.LOG_LEVEL,
    ortProvider: c.ORT_PROVIDER as 'cpu' | 'cuda' | 'auto',
    flow: c.FLOW as 'rust' | 'opencv',
    metricsPublic: c.METRICS_PUBLIC,
    callbackSecret: c.CALLBACK_SECRET,
    callbackHosts,
    jobTtlS: c.JOB_TTL_S,
    jobLockMs: Math.round(c.JOB_LOCK_S * 1000),
  }
}

export type Config = ReturnType<typeof loadConfig>
