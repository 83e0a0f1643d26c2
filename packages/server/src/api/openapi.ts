// The OpenAPI 3.1 contract of the service, served at /openapi.json and rendered at /docs.
// It is written per execution mode, so a client is offered only what the running service
// takes: `Prefer: respond-async`, `callback_url` and 202 exist in queue mode only (sync mode
// refuses a callback_url with 422). The error code enum is errors.ts's one list.
import { ERROR_CODES } from '../core/errors.js'

const error = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
})
const errors = {
  '401': error('unauthorized: missing or wrong bearer token (WWW-Authenticate: Bearer)'),
  '404': error('model_not_found'),
}
const finalTimings = ['decode', 'face', 'flow', 'poc', 'predict', 'queue', 'total']

export type ExecutionMode = 'sync' | 'queue'

export const openapiFor = (mode: ExecutionMode) => {
  const queue = mode === 'queue'
  const callbackUrl = { type: 'string', format: 'uri' } as const
  return {
  openapi: '3.1.0',
  info: {
    title: 'tabr-serve',
    version: '0.1.0',
    description:
      `One short face video in, one TabR prediction out (${mode} mode). Video → face box → Farnebäck flow + phase-only correlation → 90 POC-ABS v1 features → TabR. Errors are \`{"error": {"code", "message", "request_id"}}\` and never contain paths or stack traces. A documented path asked with a method it does not list answers 405 \`method_not_allowed\` with \`Allow\`.`,
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Error: {
        type: 'object',
        required: ['error'],
        properties: {
          error: {
            type: 'object',
            required: ['code', 'message', 'request_id'],
            properties: {
              code: {
                type: 'string',
                enum: ERROR_CODES,
              },
              message: { type: 'string' },
              request_id: { type: 'string' },
            },
          },
        },
      },
      Prediction: {
        type: 'object',
        properties: {
          label: { type: 'string' },
          probabilities: { type: 'array', items: { type: 'number' }, description: 'in label order' },
          value: { type: 'number', description: 'regression models' },
        },
      },
      InferResponse: {
        type: 'object',
        required: ['model', 'model_version', 'request_id', 'prediction', 'timings_ms'],
        properties: {
          model: { type: 'string' },
          model_version: { type: 'string' },
          request_id: { type: 'string' },
          prediction: { $ref: '#/components/schemas/Prediction' },
          video: {
            type: 'object',
            properties: {
              frames: { type: 'integer' },
              fps: { type: 'number' },
              duration_s: { type: 'number' },
              width: { type: 'integer' },
              height: { type: 'integer' },
              face_detect_rate: { type: 'number' },
            },
          },
          timings_ms: {
            type: 'object',
            description: 'milliseconds; `queue` (time waiting for a worker) in queue mode only',
            properties: Object.fromEntries(finalTimings.map((k) => [k, { type: 'number' }])),
          },
          features: {
            type: 'object',
            description: 'with ?include=features',
            properties: { names: { type: 'array', items: { type: 'string' } }, values: { type: 'array', items: { type: 'number' } } },
          },
        },
      },
      Job: {
        type: 'object',
        description: 'A queue-mode job: the body of GET /jobs/{id} and of every callback',
        required: ['job_id', 'status', 'model', 'created_at', 'attempts'],
        properties: {
          job_id: { type: 'string', format: 'uuid' },
          status: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed'] },
          model: { type: 'string' },
          created_at: { type: 'string', format: 'date-time' },
          started_at: { type: 'string', format: 'date-time' },
          finished_at: { type: 'string', format: 'date-time' },
          attempts: { type: 'integer', description: 'attempts started (a retried crash or a taken-over job counts again)' },
          result: { $ref: '#/components/schemas/InferResponse', description: 'when succeeded: the 200 body of the submitting request' },
          error: { type: 'object', description: 'when failed', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
        },
      },
      ModelInfo: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          version: { type: 'string' },
          task: { type: 'string', enum: ['binclass', 'multiclass', 'regression'] },
          labels: { type: 'array', items: { type: 'string' } },
          n_features: { type: 'integer' },
          features: { type: 'object', properties: { name: { type: 'string' }, version: { type: 'integer' } } },
          inputs: { type: 'array', items: { type: 'string' } },
          provider: { type: 'string' },
        },
      },
    },
  },
  security: [{ bearer: [] }],
  paths: {
    '/infer/{model}': {
      post: {
        summary: 'Predict from a video or a feature vector',
        parameters: [
          { name: 'model', in: 'path', required: true, schema: { type: 'string' } },
          { name: 'include', in: 'query', schema: { type: 'string', enum: ['features'] }, description: 'add the feature names and values' },
          { name: 'X-Request-Id', in: 'header', schema: { type: 'string' }, description: 'echoed; generated when absent' },
          ...(queue
            ? [
                {
                  name: 'Prefer',
                  in: 'header',
                  schema: { type: 'string', enum: ['respond-async'] },
                  description: 'answer 202 at once with Location: /jobs/{id} instead of waiting',
                },
                {
                  name: 'callback_url',
                  in: 'query',
                  schema: callbackUrl,
                  description:
                    'POST the final job JSON here, signed `X-Signature: sha256=<hex HMAC-SHA256(CALLBACK_SECRET, body)>`, with `X-Job-Id`; retried with backoff up to 5 times. Only hosts of CALLBACK_ALLOWED_HOSTS (else 422 callback_not_allowed). Also accepted as a multipart field.',
                },
              ]
            : []),
        ],
        requestBody: {
          required: true,
          content: {
            'multipart/form-data': {
              schema: { type: 'object', required: ['video'], properties: { video: { type: 'string', format: 'binary' }, ...(queue ? { callback_url: callbackUrl } : {}) } },
            },
            'video/*': { schema: { type: 'string', format: 'binary' } },
            'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
            'application/json': {
              schema: { type: 'object', required: ['features'], properties: { features: { type: 'array', items: { type: ['number', 'null'] }, description: '90 POC-ABS v1 values; null = missing' } } },
            },
          },
        },
        responses: {
          '200': { description: 'the prediction', content: { 'application/json': { schema: { $ref: '#/components/schemas/InferResponse' } } } },
          ...(queue
            ? {
                '202': {
                  description: 'with Prefer: respond-async: the job is queued (Location: /jobs/{id}, Preference-Applied: respond-async)',
                  content: { 'application/json': { schema: { type: 'object', properties: { job_id: { type: 'string' }, status: { type: 'string', enum: ['queued'] } } } } },
                },
              }
            : {}),
          '400': error('bad_request: a malformed body, multipart limits, access_token in the query'),
          ...errors,
          '408': error('request_timeout: the body did not arrive within REQUEST_TIMEOUT_S'),
          '413': error('payload_too_large (MAX_UPLOAD_MB; JSON bodies 1 MB)'),
          '415': error('unsupported_media_type: another Content-Type, a JSON charset other than UTF-8, or a Content-Encoding (video bodies take none)'),
          '422': error(`invalid_video, video_too_long, video_too_short, frame_too_large, video_too_large (more decoding work than MAX_DECODED_MEGAPIXELS), no_face, invalid_features, callback_not_allowed${queue ? '' : ' (callbacks need queue mode)'}`),
          '500': error('internal, model_error'),
          '503': error(`overloaded (with Retry-After), not_ready${queue ? ', or queue_unavailable (Redis away; with Retry-After)' : ''}`),
          '504': error('timeout (REQUEST_TIMEOUT_S)'),
        },
      },
    },
    '/jobs/{id}': {
      get: {
        summary: queue ? 'A job: queued, running, succeeded (with the result) or failed (with code and message)' : 'Queue mode only: in sync mode every id answers 404 job_not_found',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }],
        responses: {
          '200': { description: 'the job', content: { 'application/json': { schema: { $ref: '#/components/schemas/Job' } } } },
          '401': errors['401'],
          '404': error('job_not_found: unknown, or expired after JOB_TTL_S'),
          '503': error('queue_unavailable'),
        },
      },
    },
    '/models': {
      get: {
        summary: 'Every model',
        responses: { '200': { description: 'models', content: { 'application/json': { schema: { type: 'object', properties: { models: { type: 'array', items: { $ref: '#/components/schemas/ModelInfo' } } } } } } }, '401': errors['401'] },
      },
    },
    '/models/{model}': {
      get: {
        summary: "One model's metadata",
        parameters: [{ name: 'model', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { '200': { description: 'metadata', content: { 'application/json': { schema: { $ref: '#/components/schemas/ModelInfo' } } } }, ...errors },
      },
    },
    '/healthz': { get: { summary: 'The process answers', security: [], responses: { '200': { description: 'ok' } } } },
    '/readyz': { get: { summary: 'Every eagerly loaded model is ready (and Redis, in queue mode)', security: [], responses: { '200': { description: 'ready' }, '503': error('not_ready or queue_unavailable') } } },
    '/metrics': { get: { summary: 'Prometheus metrics (public when METRICS_PUBLIC=true)', responses: { '200': { description: 'text exposition format', content: { 'text/plain': {} } }, '401': errors['401'] } } },
    '/openapi.json': { get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1' } } } },
    '/docs': { get: { summary: 'A page to try the API', security: [], responses: { '200': { description: 'HTML' } } } },
  },
} as const
}

export type OpenApiDocument = ReturnType<typeof openapiFor>
