// The image's build context, from release artefacts only: the tarballs of `make pack`
// (@org/tabr-native and its linux-x64-gnu platform package), tarballs of the service and its
// page made here from their built folders, the demo models and the Containerfile. The
// workspace links (`workspace:^`) become the release version, which the tarballs beside them
// satisfy; dev dependencies and scripts are dropped. Nothing is fetched here.
//
// usage: node deploy/stage.mjs [--out DIR]   (default <repo>/dist/image); prints DIR
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { values: args } = parseArgs({ options: { out: { type: 'string', default: join(repo, 'dist', 'image') } } })
const out = resolve(args.out)
const npmOut = join(out, 'npm')
const dist = join(repo, 'dist', 'npm')

/** `npm pack` of a staged copy of a workspace package: `files` only, pinned, no dev parts. */
function packWorkspace(dir, version) {
  const src = join(repo, dir)
  const pkg = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8'))
  for (const f of pkg.files ?? []) if (!existsSync(join(src, f))) throw new Error(`${dir}/${f} is missing: run make build`)
  const stage = mkdtempSync(join(tmpdir(), 'tabr-image-'))
  try {
    for (const f of pkg.files ?? []) cpSync(join(src, f), join(stage, f), { recursive: true })
    const { devDependencies: _d, scripts: _s, private: _p, ...release } = pkg
    const pin = (deps) => deps && Object.fromEntries(Object.entries(deps).map(([n, v]) => [n, String(v).startsWith('workspace:') ? version : v]))
    release.dependencies = pin(release.dependencies)
    // The page is bundled by Vite: its own dependencies are inside dist/.
    if (pkg.name === '@org/tabr-web') delete release.dependencies
    writeFileSync(join(stage, 'package.json'), `${JSON.stringify(release, null, 2)}\n`)
    const [{ filename }] = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', npmOut], { cwd: stage, encoding: 'utf8' }))
    return filename
  } finally {
    rmSync(stage, { recursive: true, force: true })
  }
}

const { version } = JSON.parse(readFileSync(join(repo, 'packages/tabr-native/package.json'), 'utf8'))
const native = [`org-tabr-native-${version}.tgz`, `org-tabr-native-linux-x64-gnu-${version}.tgz`]
for (const t of native) if (!existsSync(join(dist, t))) throw new Error(`dist/npm/${t} is missing: run make pack`)
rmSync(out, { recursive: true, force: true })
mkdirSync(npmOut, { recursive: true })
for (const t of native) cpSync(join(dist, t), join(npmOut, t))
packWorkspace('packages/web', version)
packWorkspace('packages/server', version)
for (const m of ['tabr-demo', 'tabr-demo-v2']) cpSync(join(repo, 'models', m), join(out, 'models', m), { recursive: true })
cpSync(join(repo, 'deploy/Containerfile'), join(out, 'Containerfile'))
console.error(`staged: ${readdirSync(npmOut).join(', ')}, models ${readdirSync(join(out, 'models')).join(', ')}`)
console.log(out)
