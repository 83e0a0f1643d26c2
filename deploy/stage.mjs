// The image's build context, from release artefacts only, so that the image runs the exact
// JavaScript the tests ran:
//   app/     the service as `pnpm deploy --prod` lays it out from pnpm-lock.yaml (offline, from
//            the local store; hoisted, the way npm lays out node_modules): its built dist/, its
//            page, and every production dependency at the version the lockfile pins. The
//            workspace's @org/tabr-native and its platform package are then replaced by the
//            contents of `make pack`'s tarballs (issue 23's self-contained release).
//   models/  the demo models;  Containerfile.
// The image build then needs no npm and no registry other than Debian's. Nothing is fetched here.
//
// usage: node deploy/stage.mjs [--out DIR]   (default <repo>/dist/image); prints DIR
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { values: args } = parseArgs({ options: { out: { type: 'string', default: join(repo, 'dist', 'image') } } })
const out = resolve(args.out)
const app = join(out, 'app')
const dist = join(repo, 'dist', 'npm')

const { version } = JSON.parse(readFileSync(join(repo, 'packages/tabr-native/package.json'), 'utf8'))
const native = { '@org/tabr-native': `org-tabr-native-${version}.tgz`, '@org/tabr-native-linux-x64-gnu': `org-tabr-native-linux-x64-gnu-${version}.tgz` }
for (const t of Object.values(native)) if (!existsSync(join(dist, t))) throw new Error(`dist/npm/${t} is missing: run make pack`)
for (const f of ['packages/server/dist/bin/tabr-serve.cjs', 'packages/web/dist/index.html']) if (!existsSync(join(repo, f))) throw new Error(`${f} is missing: run make build`)

rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })
execFileSync('pnpm', ['--filter', '@org/tabr-serve', 'deploy', '--prod', '--offline', '--frozen-lockfile', '--config.node-linker=hoisted', app], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] })
// pnpm's own bookkeeping names this host's folders; the lock of what was installed stays.
rmSync(join(app, 'node_modules', '.modules.yaml'), { force: true })

// The release's native packages, unpacked as npm would (the `package/` folder of each).
for (const [name, tarball] of Object.entries(native)) {
  const dir = join(app, 'node_modules', name)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  execFileSync('tar', ['-xzf', join(dist, tarball), '-C', dir, '--strip-components=1', '--no-same-owner'])
}

// The service's manifest as released: no dev dependencies or scripts, workspace links pinned.
const pkgPath = join(app, 'package.json')
const { devDependencies: _d, scripts: _s, private: _p, ...release } = JSON.parse(readFileSync(pkgPath, 'utf8'))
const pin = (v) => (String(v).startsWith('workspace:') ? version : v)
release.dependencies = Object.fromEntries(Object.entries(release.dependencies ?? {}).map(([n, v]) => [n, pin(v)]))
writeFileSync(pkgPath, `${JSON.stringify(release, null, 2)}\n`)

for (const m of ['tabr-demo', 'tabr-demo-v2']) cpSync(join(repo, 'models', m), join(out, 'models', m), { recursive: true })
cpSync(join(repo, 'deploy/Containerfile'), join(out, 'Containerfile'))
// COPY keeps these modes and the image runs as uid 10001: readable whatever this host's umask.
execFileSync('chmod', ['-R', 'a+rX', out])
const count = readdirSync(join(app, 'node_modules')).filter((n) => !n.startsWith('.')).length
console.error(`staged: the service with ${count} top-level packages (pnpm-lock.yaml), ${Object.values(native).join(', ')}, models ${readdirSync(join(out, 'models')).join(', ')}`)
console.log(out)
