// Global setup: writes the synthetic clips the tests use, with the project's own generator
// (`tabr-synth`, built by `make build`), into a temp folder that is removed afterwards.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, existsSync } from 'node:fs'
import { tmpdir, homedir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'

export function binDir(): string {
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache', 'tabr-serve', 'target')
  return process.env.TABR_BIN_DIR ?? join(target, 'release')
}

export default function setup(project: TestProject) {
  const synth = join(binDir(), 'tabr-synth')
  if (!existsSync(synth)) {
    throw new Error(`tabr-synth not found at ${synth}: run 'make build' first (or set TABR_BIN_DIR)`)
  }
  const dir = mkdtempSync(join(tmpdir(), 'tabr-native-test-'))
  const clip = (name: string, ...args: string[]) => {
    const out = join(dir, name)
    execFileSync(synth, [out, ...args], { stdio: 'inherit' })
    return out
  }
  project.provide('clips', {
    face: clip('face.mkv', '--frames', '90', '--noise', '0.5', '--part', 'mouth'),
    long: clip('long.mkv', '--frames', '150', '--noise', '0.5'),
    noFace: clip('noface.mkv', '--frames', '30', '--face-scale', '0'),
    oneFrame: clip('one.mkv', '--frames', '1'),
    // Clips of the demo model's own distribution (seeds never used in training): a mouth
    // micro-movement the model calls micro_movement (p ≈ 0.96), and a still face it calls none.
    demoMouth: clip('demo-mouth.mkv', '--demo-seed', '900003', '--demo-class', 'micro_movement'),
    demoStill: clip('demo-still.mkv', '--demo-seed', '900002', '--demo-class', 'none'),
  })
  return () => rmSync(dir, { recursive: true, force: true })
}

declare module 'vitest' {
  export interface ProvidedContext {
    clips: { face: string; long: string; noFace: string; oneFrame: string; demoMouth: string; demoStill: string }
  }
}
