#!/usr/bin/env bash
# The GPU package on a machine with an NVIDIA GPU: installs the packed release tarballs
# (main, linux-x64-gnu, linux-x64-gpu) into an empty project with plain npm, then on every face
# fixture of ../shared compares provider cuda against provider cpu (both demo models: TabR on
# the GPU, and for v2 the face networks too): probabilities within 1e-5, the same labels. It
# times both (median of 5 predictVideo per clip, and of 200 predict calls on the features) and
# prints a table. CUDA 12 and cuDNN 9 from the system, or NVIDIA's wheels named by
# TABR_CUDA_LIBS. Not part of `make test` (no GPU here); exits 1 when CUDA and CPU disagree.
#
# usage: scripts/gpu-check.sh [DIST_NPM]   (default dist/npm, written by make pack)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dist="$(cd "${1:-$repo/dist/npm}" && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/app"
echo '{ "name": "tabr-gpu-check", "private": true }' >"$work/app/package.json"
(cd "$work/app" && npm install --no-audit --no-fund "$dist"/org-tabr-native-[0-9]*.tgz \
  "$dist"/org-tabr-native-linux-x64-gnu-*.tgz "$dist"/org-tabr-native-linux-x64-gpu-*.tgz >&2)
cat >"$work/app/check.cjs" <<'JS'
const t = require('@org/tabr-native')
const [v1, v2, ...clips] = process.argv.slice(2)
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1]
const time = async (n, f) => { const ms = []; for (let i = 0; i < n; i++) { const t0 = performance.now(); await f(); ms.push(performance.now() - t0) } return median(ms) }
;(async () => {
  let bad = 0
  console.log('| model | clip | cpu ms | cuda ms | ratio | predict cpu ms | predict cuda ms | max |Δp| | labels |')
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const dir of [v1, v2]) {
    const cpu = await t.loadModel(dir, { provider: 'cpu' })
    const cuda = await t.loadModel(dir, { provider: 'cuda' })
    if (cuda.info.provider !== 'cuda') throw new Error(`provider cuda loaded on ${cuda.info.provider}`)
    for (const clip of clips) {
      const a = await cpu.predictVideo(clip, { features: true }).catch((e) => ({ error: e.code }))
      const b = await cuda.predictVideo(clip, { features: true }).catch((e) => ({ error: e.code }))
      if (a.error || b.error) { console.log(`| ${cpu.info.name} | ${clip.split('/').pop()} | ${a.error ?? ''} | ${b.error ?? ''} | | | | | |`); if (a.error !== b.error) bad++; continue }
      const pa = a.prediction.probabilities, pb = b.prediction.probabilities
      const d = Math.max(...Object.keys(pa).map((k) => Math.abs(pa[k] - pb[k])))
      const same = a.prediction.label === b.prediction.label
      if (d > 1e-5 || !same) bad++
      const [vc, vg] = [await time(5, () => cpu.predictVideo(clip)), await time(5, () => cuda.predictVideo(clip))]
      const [pc, pg] = [await time(200, () => cpu.predict(a.features)), await time(200, () => cuda.predict(a.features))]
      console.log(`| ${cpu.info.name} | ${clip.split('/').pop()} | ${vc.toFixed(1)} | ${vg.toFixed(1)} | ${(vc / vg).toFixed(2)} | ${pc.toFixed(3)} | ${pg.toFixed(3)} | ${d.toExponential(1)} | ${same ? 'same' : 'DIFFER'} |`)
    }
  }
  console.log(bad ? `\n${bad} disagreement(s) between CUDA and CPU` : '\nCUDA and CPU agree on every clip (probabilities within 1e-5, same labels)')
  process.exit(bad ? 1 : 0)
})().catch((e) => { console.error(e.code ?? '', e.message); process.exit(1) })
JS
cd "$work/app"
node check.cjs "$repo/models/tabr-demo" "$repo/models/tabr-demo-v2" "$repo"/../shared/fixtures/faces/*
