// The Open Inference Protocol's wire format (the "v2" REST protocol of KServe, Triton, MLServer
// and Seldon) for this service's tensor path: one input, `features`, FP32 [N, n_features]; for
// classifiers the outputs `probabilities` FP32 [N, classes] and `label` BYTES [N], for
// regression `value` FP32 [N, 1]. With Triton's binary tensor data extension, which common
// clients use by default: a JSON header of `Inference-Header-Content-Length` bytes, then the
// raw little-endian tensors in the order of the header's `binary_data_size` parameters.
// A model exported with evidence outputs also answers, when a request names them, each row's
// nearest training rows (`neighbour_id`, `neighbour_label` or `neighbour_value`,
// `neighbour_weight`, `neighbour_distance`, [N, k]) and `novelty` [N, 1]; the metadata lists
// them, and a request without `outputs` gets the prediction's outputs only, so a client that
// takes everything by default pays nothing for them.
// Why it is built this way:
// - Parsing and encoding are plain functions of bytes and the model's metadata, apart from
//   Express (routes/oip.ts), so every refusal is one place: a hostile header, shape, length or
//   datatype is a 400 with our words before any native work, never a thrown library message.
// - The header is JSON.parse'd once and walked to a fixed depth (a row may be nested one
//   level, as clients send either form); nothing recurses on the client's structure.
// - JSON has no NaN, so a JSON request marks a missing value with `null` (our extension; the
//   binary form carries NaN as it is).
import { ApiError } from '../core/errors.js'
import type { BatchResult, ModelInfo } from '../services/handler.js'

/** The input tensor's name. */
export const INPUT_NAME = 'features'
/** The platform string of model metadata: a TabR network run by ONNX Runtime behind our preprocessing. */
export const PLATFORM = 'tabr_onnx'
/** The protocol extensions this service implements. */
export const EXTENSIONS = ['binary_tensor_data']
/** The largest request body (JSON header and binary tensors), after any Content-Encoding. */
export const TENSOR_BODY_LIMIT = 8 * 1024 * 1024
/** The longest request `id` echoed back. */
const MAX_ID_LENGTH = 256

export interface TensorMeta {
  name: string
  datatype: 'FP32' | 'BYTES'
  shape: number[]
}

/** The outputs a model answers with, in the order a request without `outputs` gets them. */
export function outputsOf(info: ModelInfo): TensorMeta[] {
  return info.task === 'regression'
    ? [{ name: 'value', datatype: 'FP32', shape: [-1, 1] }]
    : [
        { name: 'probabilities', datatype: 'FP32', shape: [-1, info.labels.length] },
        { name: 'label', datatype: 'BYTES', shape: [-1] },
      ]
}

/** The evidence outputs a request may name (none for a model exported without them). */
export function evidenceOutputsOf(info: ModelInfo): TensorMeta[] {
  const k = info.evidence_k
  if (!k) return []
  return [
    { name: 'neighbour_id', datatype: 'BYTES', shape: [-1, k] },
    info.task === 'regression' ? { name: 'neighbour_value', datatype: 'FP32', shape: [-1, k] } : { name: 'neighbour_label', datatype: 'BYTES', shape: [-1, k] },
    { name: 'neighbour_weight', datatype: 'FP32', shape: [-1, k] },
    { name: 'neighbour_distance', datatype: 'FP32', shape: [-1, k] },
    { name: 'novelty', datatype: 'FP32', shape: [-1, 1] },
  ]
}

/** Whether a parsed request names an evidence output. */
export const asksEvidence = (req: TensorRequest) => req.outputs.some((o) => o.name.startsWith('neighbour_') || o.name === 'novelty')

/** `GET /v2/models/{name}`: the protocol's model metadata. */
export function modelMetadata(info: ModelInfo) {
  return {
    name: info.name,
    versions: [info.version],
    platform: PLATFORM,
    inputs: [{ name: INPUT_NAME, datatype: 'FP32', shape: [-1, info.n_features] }],
    outputs: [...outputsOf(info), ...evidenceOutputsOf(info)],
  }
}

/** A parsed, validated inference request. */
export interface TensorRequest {
  id?: string
  rows: number
  /** Row-major rows × n_features, NaN = missing. */
  values: Float32Array
  /** The outputs to answer with, in order, and whether each goes as binary data. */
  outputs: { name: string; binary: boolean }[]
}

const bad = (message: string) => new ApiError('bad_request', message)
/** A client's string, shortened and quoted for a message. */
const quote = (s: string) => JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s)
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** The header's `parameters` object (absent = empty). */
function paramsOf(v: unknown, where: string): Record<string, unknown> {
  if (v === undefined) return {}
  if (!isObject(v)) throw bad(`${where}: parameters must be an object`)
  return v
}

function optionalBool(v: unknown, what: string): boolean | undefined {
  if (v === undefined || typeof v === 'boolean') return v
  throw bad(`${what} must be true or false`)
}

/**
 * Reads a request body: `headerLength` is the `Inference-Header-Content-Length` header (absent:
 * the whole body is JSON). Throws a 400 ApiError naming what is wrong.
 */
export function parseInferRequest(body: Buffer, headerLength: string | string[] | undefined, info: ModelInfo, maxRows: number): TensorRequest {
  let jsonLength = body.length
  if (headerLength !== undefined) {
    const n = typeof headerLength === 'string' && /^\d{1,10}$/.test(headerLength.trim()) ? Number(headerLength.trim()) : NaN
    if (!(n >= 1 && n <= body.length)) throw bad("Inference-Header-Content-Length must be the JSON header's length in bytes, at most the body's")
    jsonLength = n
  }
  if (jsonLength === 0) throw bad('the body is empty: an inference request is a JSON object')
  let header: unknown
  try {
    header = JSON.parse(body.subarray(0, jsonLength).toString('utf8'))
  } catch {
    throw bad('the inference request header is not valid JSON')
  }
  if (!isObject(header)) throw bad('the inference request must be a JSON object')
  const binary = body.subarray(jsonLength)

  const id = header.id
  if (id !== undefined && (typeof id !== 'string' || id.length > MAX_ID_LENGTH)) throw bad(`id must be a string of at most ${MAX_ID_LENGTH} characters`)

  const inputs = header.inputs
  if (!Array.isArray(inputs) || inputs.length !== 1 || !isObject(inputs[0])) throw bad(`inputs must hold one tensor, "${INPUT_NAME}"`)
  const input = inputs[0]
  if (input.name !== INPUT_NAME) throw bad(`unknown input ${typeof input.name === 'string' ? quote(input.name) : '(no name)'}: this model takes one input, "${INPUT_NAME}"`)
  if (input.datatype !== 'FP32') throw bad(`input "${INPUT_NAME}": datatype must be FP32`)
  const n = info.n_features
  const shape = input.shape
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isSafeInteger(d)) || shape[1] !== n || shape[0] < 1) {
    throw bad(`input "${INPUT_NAME}": shape must be [N, ${n}] with N ≥ 1`)
  }
  const rows = shape[0] as number
  if (rows > maxRows) throw bad(`input "${INPUT_NAME}": at most ${maxRows} rows per request (MAX_BATCH_ROWS)`)
  const want = rows * n

  const inputParams = paramsOf(input.parameters, `input "${INPUT_NAME}"`)
  const size = inputParams.binary_data_size
  let values: Float32Array
  if (size !== undefined) {
    if (!Number.isSafeInteger(size) || (size as number) < 0) throw bad(`input "${INPUT_NAME}": binary_data_size must be a whole number of bytes`)
    if (input.data !== undefined) throw bad(`input "${INPUT_NAME}": either data or binary_data_size, not both`)
    if (size !== want * 4) throw bad(`input "${INPUT_NAME}": binary_data_size must be ${want * 4} (${rows} × ${n} FP32 values)`)
    if (binary.length !== size) throw bad(`the binary data after the header is ${binary.length} bytes; binary_data_size says ${size as number}`)
    const view = new DataView(binary.buffer, binary.byteOffset, binary.byteLength)
    values = new Float32Array(want)
    for (let i = 0; i < want; i++) values[i] = view.getFloat32(i * 4, true)
  } else {
    if (binary.length) throw bad('binary data follows the header, but no input has a binary_data_size')
    values = flatten(input.data, want, rows, n)
  }

  const params = paramsOf(header.parameters, 'the request')
  const binaryAll = optionalBool(params.binary_data_output, 'parameters.binary_data_output') ?? false
  const known = [...outputsOf(info), ...evidenceOutputsOf(info)].map((o) => o.name)
  let outputs: TensorRequest['outputs']
  if (header.outputs === undefined || (Array.isArray(header.outputs) && header.outputs.length === 0)) {
    outputs = known.map((name) => ({ name, binary: binaryAll }))
  } else {
    if (!Array.isArray(header.outputs) || header.outputs.length > known.length) throw bad(`outputs must be a list of at most ${known.length} of: ${known.join(', ')}`)
    outputs = header.outputs.map((o: unknown) => {
      if (!isObject(o) || typeof o.name !== 'string') throw bad('each requested output needs a name')
      if (!known.includes(o.name)) throw bad(`unknown output ${quote(o.name)} (this model has: ${known.join(', ')})`)
      const p = paramsOf(o.parameters, `output ${quote(o.name)}`)
      if (p.classification !== undefined) throw bad('the classification extension is not supported: ask for "probabilities" and "label"')
      return { name: o.name, binary: optionalBool(p.binary_data, `output ${quote(o.name)}: binary_data`) ?? binaryAll }
    })
    if (new Set(outputs.map((o) => o.name)).size !== outputs.length) throw bad('an output is requested twice')
  }
  return { ...(id === undefined ? {} : { id }), rows, values, outputs }
}

/** JSON `data`: `want` numbers (null = missing), flat or as rows of `n`. */
function flatten(data: unknown, want: number, rows: number, n: number): Float32Array {
  const wrong = () => bad(`input "${INPUT_NAME}": data must hold ${rows} × ${n} numbers (null for a missing value), flat or as ${rows} rows`)
  if (!Array.isArray(data)) throw wrong()
  const out = new Float32Array(want)
  let k = 0
  const put = (v: unknown) => {
    if (k >= want) throw wrong()
    if (typeof v === 'number') out[k++] = v
    else if (v === null) out[k++] = Number.NaN
    else throw wrong()
  }
  for (const v of data) {
    if (Array.isArray(v)) {
      if (v.length !== n) throw wrong()
      for (const x of v) put(x)
    } else put(v)
  }
  if (k !== want) throw wrong()
  return out
}

interface OutputTensor extends TensorMeta {
  data?: (number | string)[]
  parameters?: { binary_data_size: number }
}

/** One output's values as binary data: FP32 little-endian, BYTES as a 4-byte length and UTF-8 per element. */
function binaryOf(values: Float32Array | string[]): Buffer {
  if (values instanceof Float32Array) {
    const b = Buffer.alloc(values.length * 4)
    values.forEach((v, i) => b.writeFloatLE(v, i * 4))
    return b
  }
  return Buffer.concat(
    values.flatMap((s) => {
      const bytes = Buffer.from(s, 'utf8')
      const len = Buffer.alloc(4)
      len.writeUInt32LE(bytes.length)
      return [len, bytes]
    }),
  )
}

/**
 * The response: the JSON header and, when an output goes as binary data, the bytes after it
 * (the route sends `Inference-Header-Content-Length` then).
 */
export function encodeInferResponse(info: ModelInfo, req: TensorRequest, r: BatchResult): { header: Buffer; binary?: Buffer } {
  const d = info.labels.length
  const tensors: Record<string, () => { shape: number[]; values: Float32Array | string[] }> = {
    probabilities: () => ({ shape: [r.rows, d], values: Float32Array.from(r.probabilities ?? []) }),
    label: () => ({ shape: [r.rows], values: r.labels ?? [] }),
    value: () => ({ shape: [r.rows, 1], values: Float32Array.from(r.values ?? []) }),
  }
  const k = info.evidence_k
  const ev = r.evidence ?? []
  const perNeighbour = <T>(f: (n: NonNullable<BatchResult['evidence']>[number]['neighbours'][number]) => T) => ev.flatMap((e) => e.neighbours.map(f))
  Object.assign(tensors, {
    neighbour_id: () => ({ shape: [r.rows, k], values: perNeighbour((n) => n.id) }),
    neighbour_label: () => ({ shape: [r.rows, k], values: perNeighbour((n) => n.label ?? '') }),
    neighbour_value: () => ({ shape: [r.rows, k], values: Float32Array.from(perNeighbour((n) => n.value ?? Number.NaN)) }),
    neighbour_weight: () => ({ shape: [r.rows, k], values: Float32Array.from(perNeighbour((n) => n.weight)) }),
    neighbour_distance: () => ({ shape: [r.rows, k], values: Float32Array.from(perNeighbour((n) => n.distance)) }),
    novelty: () => ({ shape: [r.rows, 1], values: Float32Array.from(ev, (e) => e.novelty) }),
  })
  const meta = new Map([...outputsOf(info), ...evidenceOutputsOf(info)].map((o) => [o.name, o]))
  const chunks: Buffer[] = []
  const outputs: OutputTensor[] = req.outputs.map(({ name, binary }) => {
    const { shape, values } = tensors[name]!()
    const base = { name, datatype: meta.get(name)!.datatype, shape }
    if (!binary) return { ...base, data: values instanceof Float32Array ? Array.from(values) : values }
    const bytes = binaryOf(values)
    chunks.push(bytes)
    return { ...base, parameters: { binary_data_size: bytes.length } }
  })
  const body = { model_name: info.name, model_version: info.version, ...(req.id === undefined ? {} : { id: req.id }), outputs }
  const header = Buffer.from(JSON.stringify(body), 'utf8')
  return chunks.length ? { header, binary: Buffer.concat(chunks) } : { header }
}
