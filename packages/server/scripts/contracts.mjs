#!/usr/bin/env node
// Writes src/core/native.generated.ts (and scripts/tabr/specs.json for the Python tooling)
// from the native core, through the built addon
// (@org/tabr-native): the stable error codes a native rejection carries, every feature
// spec's id, version, face method, length and names, and the metadata shapes (the core's
// JSON Schemas of Meta, VideoSummary and StageTimings) as TypeScript types and as schemas
// the OpenAPI document embeds. The service reads these instead of
// restating them, so a new code or spec in the core reaches the error table, the OpenAPI
// document and the routes, or fails the build where a table misses it.
//
//   node scripts/contracts.mjs           rewrite the files
//   node scripts/contracts.mjs --check   exit 1 when one is stale (test/contracts.test.ts)
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { errorCodes, metadataSchemas, specs } from '@org/tabr-native'

export const GENERATED = join(dirname(fileURLToPath(import.meta.url)), '../src/core/native.generated.ts')
/** The same, as JSON, for the Python tooling (scripts/tabr/specs.py). */
export const GENERATED_JSON = join(dirname(fileURLToPath(import.meta.url)), '../../../scripts/tabr/specs.json')

/** The specs as the core describes them: the public ones (the core's test-only spec shows only
 * with TABR_TEST_SPECS=1, which the contracts never see). */
const publicSpecs = () => {
  delete process.env.TABR_TEST_SPECS
  return specs().map((s) => ({ id: s.id, name: s.name, version: s.version, face_method: s.faceMethod, n_features: s.nFeatures, needs: s.needs, quality: s.quality, names: s.names }))
}

/** The core's schemas without the keys a document embedding them has no use for. */
const schemas = () => {
  const all = JSON.parse(metadataSchemas())
  const clean = (v) => {
    if (Array.isArray(v)) return v.map(clean)
    if (v === null || typeof v !== 'object') return v
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => !['$schema', 'title', 'format'].includes(k))
        .map(([k, x]) => [k, clean(x)]),
    )
  }
  return Object.fromEntries(Object.entries(all).map(([name, schema]) => [name, clean(schema)]))
}

/** A JSON Schema as a TypeScript type (the subset schemars writes for the core's shapes). */
const tsType = (s, defs, indent = '') => {
  if (s.$ref) return `Native${s.$ref.split('/').pop()}`
  if (s.allOf) return s.allOf.map((x) => tsType(x, defs, indent)).join(' & ')
  if (s.oneOf) return s.oneOf.map((x) => tsType(x, defs, indent)).join(' | ')
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' | ')
  if (s.const !== undefined) return JSON.stringify(s.const)
  if (Array.isArray(s.type)) return s.type.map((t) => (t === 'null' ? 'null' : tsType({ ...s, type: t }, defs, indent))).join(' | ')
  if (s.type === 'array' && s.prefixItems) return `[${s.prefixItems.map((x) => tsType(x, defs, indent)).join(', ')}]`
  if (s.type === 'array') return `${tsType(s.items, defs, indent)}[]`
  if (s.type === 'integer' || s.type === 'number') return 'number'
  if (s.type === 'string') return 'string'
  if (s.type === 'boolean') return 'boolean'
  if (s.type === 'object' && s.properties) return tsObject(s, defs, indent)
  throw new Error(`contracts: no TypeScript type for the schema ${JSON.stringify(s)}`)
}

const tsObject = (s, defs, indent) => {
  const required = new Set(s.required ?? [])
  const lines = Object.entries(s.properties).map(([k, p]) => {
    const doc = p.description ? `${indent}  /** ${p.description.replaceAll('*/', '*\\/').replaceAll('\n', ' ')} */\n` : ''
    return `${doc}${indent}  ${k}${required.has(k) ? '' : '?'}: ${tsType(p, defs, `${indent}  `)}`
  })
  return `{\n${lines.join('\n')}\n${indent}}`
}

/** `export interface NativeX` (or `type`, for a shape that is not an object) for every shape
 * and every definition it refers to, each once. */
const renderTypes = (all) => {
  const seen = new Map()
  for (const [name, schema] of Object.entries(all)) {
    seen.set(name, schema)
    for (const [d, def] of Object.entries(schema.$defs ?? {})) seen.set(d, def)
  }
  return [...seen].flatMap(([name, s]) => [
    ...(s.description ? [`/** ${s.description.replaceAll('\n', ' ')} */`] : []),
    s.type === 'object' && s.properties ? `export interface Native${name} ${tsObject(s, seen, '')}` : `export type Native${name} = ${tsType(s, seen)}`,
    '',
  ])
}

/** A shape with every `$ref` written in place and no `$defs`: what a document that embeds it
 * (the OpenAPI description, whose refs point elsewhere) needs. */
const inlined = (schema) => {
  const defs = schema.$defs ?? {}
  const walk = (v) => {
    if (Array.isArray(v)) return v.map(walk)
    if (v === null || typeof v !== 'object') return v
    if (v.$ref) return walk(defs[v.$ref.split('/').pop()])
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => k !== '$defs')
        .map(([k, x]) => [k, walk(x)]),
    )
  }
  return walk(schema)
}

/** The JSON file's text. */
export function renderJson() {
  return `${JSON.stringify({ generated_by: 'packages/server/scripts/contracts.mjs (make contracts), from the native core: do not edit', error_codes: errorCodes(), specs: publicSpecs() }, null, 1)}\n`
}

/** The file's text, from the addon's answers. */
export function render() {
  const specList = publicSpecs()
  const shapes = schemas()
  return [
    '// Generated by scripts/contracts.mjs from the native core (@org/tabr-native): do not edit.',
    '// `make contracts` rewrites it; test/contracts.test.ts fails when it is stale.',
    '',
    '/** The stable codes a native rejection can carry (tabr_core::ErrorCode::ALL). */',
    `export const NATIVE_ERROR_CODES = ${JSON.stringify(errorCodes())} as const`,
    '',
    'export type NativeErrorCode = (typeof NATIVE_ERROR_CODES)[number]',
    '',
    '/** Every feature spec the core implements, oldest first (tabr_core::Spec::describe). */',
    `export const FEATURE_SPECS = ${JSON.stringify(specList)} as const`,
    '',
    '// The metadata the core reports (tabr_core::contracts::schemas), as TypeScript types: the',
    "// service's answers and the browser client use these, so a field changed in the core changes",
    '// them here or fails their type check.',
    '',
    ...renderTypes(shapes),
    '/** The same shapes as JSON Schemas (2020-12), each written in place, for the OpenAPI document. */',
    `export const METADATA_SCHEMAS = ${JSON.stringify(Object.fromEntries(Object.entries(shapes).map(([n, s]) => [n, inlined(s)])))} as const`,
    '',
  ].join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = [
    [GENERATED, render()],
    [GENERATED_JSON, renderJson()],
  ]
  for (const [path, text] of files) {
    if (!process.argv.includes('--check')) writeFileSync(path, text)
    else if (readFileSync(path, 'utf8') !== text) {
      console.error(`${path} is stale: run make contracts (node packages/server/scripts/contracts.mjs)`)
      process.exit(1)
    }
  }
}
