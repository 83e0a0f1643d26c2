// The OpenAPI 3.1 contract of the service, served at /openapi.json and rendered at /docs.
// It is written per execution mode, so a client is offered only what the running service
// takes: `Prefer: respond-async`, `callback_url` and 202 exist in queue mode only (sync mode
// refuses a callback_url with 422). The error code enum is errors.ts's one list.
import { SERVICE_NAME, SERVICE_VERSION } from '../core/config.js'
import { ERROR_CODES } from '../core/errors.js'
import { FEATURE_SPECS, METADATA_SCHEMAS } from '../core/native.generated.js'

/** The vector's length, as the core describes every spec (they share it). */
const N_FEATURES = FEATURE_SPECS[0].n_features

const error = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
})
const errors = {
  '401': error('unauthorized: missing or wrong bearer token (WWW-Authenticate: Bearer)'),
  '404': error('model_not_found'),
}
/** An answer's stage milliseconds: the core's stages (their descriptions are its own) and the
 * service's. `total` is the service's wall time of the request, not the extraction's. */
const timingProperties = {
  ...Object.fromEntries(Object.entries(METADATA_SCHEMAS.StageTimings.properties).filter(([k]) => k !== 'total')),
  predict: { type: 'number', description: 'Preprocessing and the model.' },
  queue: { type: 'number', description: 'Time waiting for a worker (queue mode only).' },
  total: { type: 'number', description: 'Wall time of the whole request in the service.' },
}

/** The Open Inference Protocol's error form: the message alone, with the service's status. */
const oipError = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/OipError' } } },
})
const oipModel = { name: 'name', in: 'path', required: true, schema: { type: 'string' } } as const
const oipVersion = { name: 'version', in: 'path', required: true, schema: { type: 'string' }, description: "the model's version (GET /v2/models/{name} lists it); another one is 404" } as const
const oipMetadata = (versioned: boolean) => ({
  get: {
    summary: 'Open Inference Protocol: model metadata (input `features` FP32 [-1, n_features]; outputs `probabilities` FP32 [-1, classes] and `label` BYTES [-1], or `value` FP32 [-1, 1])',
    tags: ['Open Inference Protocol v2'],
    parameters: versioned ? [oipModel, oipVersion] : [oipModel],
    responses: {
      '200': { description: 'metadata', content: { 'application/json': { schema: { $ref: '#/components/schemas/OipModelMetadata' } } } },
      '401': oipError('no valid bearer token'),
      '404': oipError('unknown model or version'),
    },
  },
})
const oipReady = (versioned: boolean) => ({
  get: {
    summary: 'Open Inference Protocol: the model is loaded (loads it first with MODEL_LOADING=lazy)',
    tags: ['Open Inference Protocol v2'],
    parameters: versioned ? [oipModel, oipVersion] : [oipModel],
    responses: {
      '200': { description: 'ready', content: { 'application/json': { schema: { type: 'object', properties: { name: { type: 'string' }, ready: { type: 'boolean' } } } } } },
      '401': oipError('no valid bearer token'),
      '404': oipError('unknown model or version'),
      '503': oipError('still loading'),
    },
  },
})
const oipInfer = (versioned: boolean) => ({
  post: {
    summary: 'Open Inference Protocol: predict a batch of feature vectors in one native call (run by the API process in both execution modes)',
    description:
      "The body is a JSON inference request, or (Triton's binary tensor data extension) a JSON header of `Inference-Header-Content-Length` bytes followed by " +
      'the tensors whose inputs give `parameters.binary_data_size`: FP32 little-endian, row-major. Any Content-Type; gzip or deflate Content-Encoding; at ' +
      'most 8 MiB after decoding and MAX_BATCH_ROWS rows. A missing value is NaN in binary data and `null` in JSON `data` (JSON has no NaN; `null` is this ' +
      "service's extension). Outputs go as binary data when `parameters.binary_data_output` or an output's `parameters.binary_data` asks (the response then " +
      'carries `Inference-Header-Content-Length`; BYTES elements are a 4-byte little-endian length and UTF-8). `id` is echoed; `outputs` picks a subset in ' +
      'its order.',
    tags: ['Open Inference Protocol v2'],
    parameters: versioned ? [oipModel, oipVersion] : [oipModel],
    requestBody: {
      required: true,
      content: {
        'application/json': { schema: { $ref: '#/components/schemas/OipInferRequest' } },
        'application/octet-stream': { schema: { type: 'string', format: 'binary' }, description: 'JSON header + binary tensors (Inference-Header-Content-Length)' },
      },
    },
    responses: {
      '200': {
        description: 'the outputs',
        content: {
          'application/json': { schema: { $ref: '#/components/schemas/OipInferResponse' } },
          'application/octet-stream': { schema: { type: 'string', format: 'binary' }, description: 'JSON header + binary outputs' },
        },
      },
      '400': oipError(
        'a malformed request: header length, JSON, input name, datatype (FP32 only), shape ([N, n_features], 1 ≤ N ≤ MAX_BATCH_ROWS), data length, binary ' +
          'size, unknown or repeated outputs, the classification extension',
      ),
      '401': oipError('no valid bearer token'),
      '404': oipError('unknown model or version'),
      '408': oipError('the body did not arrive within REQUEST_TIMEOUT_S'),
      '413': oipError('the body is over 8 MiB (after Content-Encoding)'),
      '415': oipError('an unsupported Content-Encoding'),
      '422': oipError('values the model cannot take, naming the feature or row: infinite; missing without an imputer; so far out of range that preprocessing or the network overflows'),
      '500': oipError('the model failed to run'),
      '503': oipError('overloaded (Retry-After) or not ready'),
      '504': oipError('timeout (REQUEST_TIMEOUT_S)'),
    },
  },
})
const oipTensor = {
  type: 'object',
  required: ['name', 'datatype', 'shape'],
  properties: { name: { type: 'string' }, datatype: { type: 'string' }, shape: { type: 'array', items: { type: 'integer' } } },
} as const

export type ExecutionMode = 'sync' | 'queue'

export const openapiFor = (mode: ExecutionMode) => {
  const queue = mode === 'queue'
  const callbackUrl = { type: 'string', format: 'uri' } as const
  return {
    openapi: '3.1.0',
    info: {
      title: SERVICE_NAME,
      version: SERVICE_VERSION,
      description:
        `One short face video in, one TabR prediction out (${mode} mode). Video → face (poc-abs v1: a Haar box; v2: landmark-aligned, as the model's ` +
        `features.version says) → Farnebäck flow + phase-only correlation → ${N_FEATURES} POC-ABS features → TabR. Errors are \`{"error": {"code", "message", ` +
        `"request_id"}}\` and never contain paths or stack traces. A documented path asked with a method it does not list answers 405 \`method_not_allowed\` ` +
        `with \`Allow\`.`,
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
            video: METADATA_SCHEMAS.VideoSummary,
            timings_ms: {
              type: 'object',
              description: 'milliseconds; `queue` (time waiting for a worker) in queue mode only',
              properties: timingProperties,
            },
            features: {
              type: 'object',
              description: 'with ?include=features',
              properties: { names: { type: 'array', items: { type: 'string' } }, values: { type: 'array', items: { type: 'number' } } },
            },
            series: {
              type: 'object',
              description: 'with ?include=series: the 18 channels of every frame pair, from which the statistics are computed',
              required: ['channels', 't_s', 'values'],
              properties: {
                channels: { type: 'array', items: { type: 'string' }, description: 'e.g. mouth.abs (8 regions × abs, poc; global.head, global.poc)' },
                t_s: { type: 'array', items: { type: 'number' }, description: "each pair's time in seconds (its later frame)" },
                values: { type: 'array', items: { type: 'array', items: { type: 'number' } }, description: 'per pair, the values in channels order' },
              },
            },
            evidence: { $ref: '#/components/schemas/Evidence' },
          },
        },
        Evidence: {
          type: 'object',
          description:
            'with ?include=evidence (models exported with evidence outputs): the training rows the prediction drew on. TabR predicts by retrieving its nearest ' +
            'training rows and mixing their labels; these are those rows, from the same computation. `novelty` is the share of training rows that are nearer to ' +
            'their own nearest neighbour than this input is to its nearest: about uniform in 0–1 for inputs like the training data, near 1 for inputs unlike it ' +
            '(it says "unlike what the model has seen", not "wrong")',
          required: ['neighbours', 'novelty'],
          properties: {
            neighbours: {
              type: 'array',
              description: 'nearest first',
              items: {
                type: 'object',
                required: ['id', 'weight', 'distance'],
                properties: {
                  id: { type: 'string', description: "the training row's id, as exported (e.g. its clip's file name)" },
                  label: { type: 'string', description: 'its label (classifiers)' },
                  value: { type: 'number', description: 'its target (regression)' },
                  weight: { type: 'number', description: 'its weight in the prediction (the retrieval softmax over the model context)' },
                  distance: { type: 'number', description: "squared L2 distance in the model's key space" },
                },
              },
            },
            novelty: { type: 'number', minimum: 0, maximum: 1 },
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
        OipError: { type: 'object', required: ['error'], properties: { error: { type: 'string' } } },
        OipModelMetadata: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            versions: { type: 'array', items: { type: 'string' } },
            platform: { type: 'string' },
            inputs: { type: 'array', items: oipTensor },
            outputs: { type: 'array', items: oipTensor },
          },
        },
        OipInferRequest: {
          type: 'object',
          required: ['inputs'],
          properties: {
            id: { type: 'string', maxLength: 256 },
            parameters: { type: 'object', properties: { binary_data_output: { type: 'boolean' } } },
            inputs: {
              type: 'array',
              minItems: 1,
              maxItems: 1,
              items: {
                type: 'object',
                required: ['name', 'datatype', 'shape'],
                properties: {
                  name: { type: 'string', enum: ['features'] },
                  datatype: { type: 'string', enum: ['FP32'] },
                  shape: {
                    type: 'array',
                    items: { type: 'integer', minimum: 1 },
                    minItems: 2,
                    maxItems: 2,
                    description: "[N, n_features]: 1 ≤ N ≤ MAX_BATCH_ROWS, and the model's n_features (GET /v2/models/{name})",
                  },
                  parameters: { type: 'object', properties: { binary_data_size: { type: 'integer' } } },
                  data: { type: 'array', items: { type: ['number', 'null', 'array'] }, description: 'N × n_features values, flat or as rows; null = missing' },
                },
              },
            },
            outputs: {
              type: 'array',
              items: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, parameters: { type: 'object', properties: { binary_data: { type: 'boolean' } } } } },
            },
          },
        },
        OipInferResponse: {
          type: 'object',
          required: ['model_name', 'model_version', 'outputs'],
          properties: {
            model_name: { type: 'string' },
            model_version: { type: 'string' },
            id: { type: 'string' },
            outputs: {
              type: 'array',
              items: {
                ...oipTensor,
                properties: {
                  ...oipTensor.properties,
                  data: { type: 'array', items: { type: ['number', 'string'] } },
                  parameters: { type: 'object', properties: { binary_data_size: { type: 'integer' } } },
                },
              },
            },
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
            evidence_k: { type: 'integer', description: "neighbours an answer's evidence lists; 0: exported without evidence outputs" },
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
            {
              name: 'include',
              in: 'query',
              schema: { type: 'string', pattern: '^(features|series|evidence)(,(features|series|evidence))*$' },
              description:
                '`features`: add the feature names and values; `series`: add the 18 channels of every frame pair (when and where the face moved); ' +
                '`evidence`: add the training rows the prediction drew on and its novelty (400 evidence_unavailable for a model exported without them); comma-separated',
            },
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
                      'POST the final job JSON here, signed `X-Signature: sha256=<hex HMAC-SHA256(CALLBACK_SECRET, body)>`, with `X-Job-Id`; retried with backoff up to 5 ' +
                      'times. Only hosts of CALLBACK_ALLOWED_HOSTS (else 422 callback_not_allowed). Also accepted as a multipart field.',
                  },
                ]
              : []),
          ],
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: {
                  type: 'object',
                  required: ['video'],
                  properties: {
                    video: {
                      type: 'string',
                      contentMediaType: 'video/*',
                      description: 'the bytes of one video file (a self-contained container: MP4/MOV, Matroska/WebM, AVI, MPEG-TS, …); anything else is 422 invalid_video',
                    },
                    ...(queue ? { callback_url: callbackUrl } : {}),
                  },
                },
                encoding: { video: { contentType: 'video/*, application/octet-stream' } },
              },
              'video/*': { schema: { type: 'string', contentMediaType: 'video/*', description: 'the bytes of one video file; anything else is 422 invalid_video' } },
              'application/octet-stream': { schema: { type: 'string', contentMediaType: 'video/*', description: 'the bytes of one video file; anything else is 422 invalid_video' } },
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['features'],
                  properties: {
                    features: {
                      type: 'array',
                      items: { type: ['number', 'null'] },
                      description: `${N_FEATURES} POC-ABS values of the model's feature spec (GET /models/{model}: features); null = missing`,
                    },
                  },
                },
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
            '400': error('bad_request: a malformed body, multipart limits, access_token in the query; evidence_unavailable: ?include=evidence on a model exported without evidence outputs'),
            ...errors,
            '408': error('request_timeout: the body did not arrive within REQUEST_TIMEOUT_S'),
            '413': error('payload_too_large (MAX_UPLOAD_MB; JSON bodies 1 MB)'),
            '415': error('unsupported_media_type: another Content-Type, a JSON charset other than UTF-8, or a Content-Encoding (video bodies take none)'),
            '422': error(
              `invalid_video, video_too_long, video_too_short, frame_too_large, video_too_large (more frames than MAX_FRAME_RATE × MAX_VIDEO_SECONDS, or more ` +
                `decoding work than MAX_DECODED_MEGAPIXELS), no_face, invalid_features (also values so far out of range that the model overflows), ` +
                `callback_not_allowed${queue ? '' : ' (callbacks need queue mode)'}`,
            ),
            '500': error('internal, model_error'),
            '503': error(`overloaded (with Retry-After), not_ready${queue ? ', or queue_unavailable (Redis away; with Retry-After)' : ''}`),
            '504': error('timeout (REQUEST_TIMEOUT_S)'),
          },
        },
      },
      ...(queue
        ? {
            '/jobs/{id}': {
              get: {
                summary: 'A job: queued, running, succeeded (with the result) or failed (with code and message)',
                parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }],
                responses: {
                  '200': { description: 'the job', content: { 'application/json': { schema: { $ref: '#/components/schemas/Job' } } } },
                  '401': errors['401'],
                  '404': error('job_not_found: unknown, or expired after JOB_TTL_S'),
                  '503': error('queue_unavailable'),
                },
              },
            },
          }
        : {}),
      '/models': {
        get: {
          summary: 'Every model',
          responses: {
            '200': {
              description: 'models',
              content: { 'application/json': { schema: { type: 'object', properties: { models: { type: 'array', items: { $ref: '#/components/schemas/ModelInfo' } } } } } },
            },
            '401': errors['401'],
          },
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
      '/readyz': {
        get: {
          summary: 'Every eagerly loaded model is ready (and Redis, in queue mode)',
          security: [],
          responses: { '200': { description: 'ready' }, '503': error('not_ready or queue_unavailable') },
        },
      },
      '/metrics': {
        get: { summary: 'Prometheus metrics (public when METRICS_PUBLIC=true)', responses: { '200': { description: 'text exposition format', content: { 'text/plain': {} } }, '401': errors['401'] } },
      },
      '/v2': {
        get: {
          summary: 'Open Inference Protocol: server metadata (name, version, extensions)',
          tags: ['Open Inference Protocol v2'],
          responses: {
            '200': {
              description: 'metadata',
              content: {
                'application/json': { schema: { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' }, extensions: { type: 'array', items: { type: 'string' } } } } },
              },
            },
            '401': oipError('no valid bearer token'),
          },
        },
      },
      '/v2/health/live': {
        get: { summary: 'Open Inference Protocol: the process answers', tags: ['Open Inference Protocol v2'], security: [], responses: { '200': { description: '{"live": true}' } } },
      },
      '/v2/health/ready': {
        get: {
          summary: 'Open Inference Protocol: every eagerly loaded model is ready (these routes need no Redis)',
          tags: ['Open Inference Protocol v2'],
          security: [],
          responses: { '200': { description: '{"ready": true}' }, '503': oipError('models still loading') },
        },
      },
      '/v2/models/{name}': oipMetadata(false),
      '/v2/models/{name}/ready': oipReady(false),
      '/v2/models/{name}/infer': oipInfer(false),
      '/v2/models/{name}/versions/{version}': oipMetadata(true),
      '/v2/models/{name}/versions/{version}/ready': oipReady(true),
      '/v2/models/{name}/versions/{version}/infer': oipInfer(true),
      '/': { get: { summary: 'Redirects to the browser client, /app/', security: [], responses: { '302': { description: 'Location: /app/' } } } },
      '/app/config.json': {
        get: {
          summary: 'The browser client: the limits a recording must respect (public, no secrets)',
          security: [],
          responses: {
            '200': { description: 'limits', content: { 'application/json': { schema: { type: 'object', properties: { max_video_seconds: { type: 'number' }, max_upload_mb: { type: 'number' } } } } } },
          },
        },
      },
      '/app/questions.json': {
        get: {
          summary: "The browser client's questions: WEB_QUESTIONS_FILE's, else the built page's own list",
          security: [],
          responses: { '200': { description: 'questions', content: { 'application/json': { schema: { type: 'object', properties: { questions: { type: 'array', items: { type: 'string' } } } } } } } },
        },
      },
      '/openapi.json': { get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1' } } } },
      '/docs': { get: { summary: 'A page to try the API', security: [], responses: { '200': { description: 'HTML' } } } },
    },
  } as const
}

export type OpenApiDocument = ReturnType<typeof openapiFor>
