// What the install tests ask of @org/tabr-native, the same program for the development build
// (the oracle) and for the release installed in a bare Debian: for each video, its frame
// digest (the decoded bytes), its v1 and v2 features (extractFeatures) and the v1 and v2 demo
// models' predictions on them (predict), and predictVideo of both models on the first video.
// Every outcome is kept, errors as their codes, so two builds compare as JSON.
//
// usage: node probe.cjs PACKAGE DEMO_V1 DEMO_V2 VIDEO...   prints one JSON object
'use strict'
const { readFileSync } = require('node:fs')
const { basename } = require('node:path')

const [pkg, demoV1, demoV2, ...videos] = process.argv.slice(2)
// Resolved from the working directory: the installed project's node_modules, or a path.
const native = require(require.resolve(pkg, { paths: [process.cwd()] }))
const outcome = (p, pick) => p.then(pick, (e) => ({ error: e.code ?? String(e) }))

async function main() {
  const models = { v1: await native.loadModel(demoV1), v2: await native.loadModel(demoV2) }
  const results = []
  for (const v of videos) {
    const r = { video: basename(v), frames: await outcome(native.frameDigest(v), (d) => d) }
    for (const [spec, m] of Object.entries(models)) {
      // extractFeatures throws (not rejects) on a bad option: an async wrapper catches both.
      const features = await outcome((async () => native.extractFeatures(v, { spec: `poc-abs/${spec.slice(1)}` }))(), (f) => Array.from(f.values))
      r[spec] = features.error ? features : { features, prediction: await outcome(m.predict(Float32Array.from(features)), (p) => p) }
    }
    results.push(r)
  }
  const first = videos.find((_, i) => !results[i].v1.error) ?? videos[0]
  const predictVideo = {}
  for (const [spec, m] of Object.entries(models)) {
    predictVideo[spec] = await outcome(m.predictVideo(first, { features: true }), (p) => ({
      prediction: p.prediction,
      features: Array.from(p.features),
    }))
  }
  const maps = readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .map((l) => l.split(/\s+/)[5] ?? '')
  return {
    node: process.version,
    glibc: process.report.getReport().header.glibcVersionRuntime,
    addon: maps.find((p) => p.endsWith('.node') && p.includes('tabr-native')),
    runtime: maps.find((p) => p.includes('libonnxruntime.so')),
    providers: Object.fromEntries(Object.entries(models).map(([k, m]) => [k, m.info.provider])),
    results,
    predictVideo,
  }
}

main().then(
  (out) => console.log(JSON.stringify(out)),
  (e) => {
    console.error(e.code ?? '', e.message)
    process.exit(1)
  },
)
