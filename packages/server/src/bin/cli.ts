// `tabr-serve serve` (the HTTP service) and `tabr-serve worker` (a queue-mode worker),
// configured from the environment (and .env). Started by tabr-serve.cts, which sizes the
// thread pool first.
import { ConfigError, loadConfig } from '../core/config.js'
import { start } from '../server.js'
import { startWorker } from '../worker.js'

const usage = `usage: tabr-serve [serve | worker]

  serve   the HTTP API for the models of MODEL_REGISTRY (EXECUTION_MODE=sync runs them here;
          EXECUTION_MODE=queue enqueues them on REDIS_URL for workers)
  worker  runs queued jobs from REDIS_URL with the same MODEL_REGISTRY (start any number, on
          any machine), CONCURRENCY jobs at a time

Settings come from the environment and .env (see .env.example). SIGTERM or SIGINT shuts down
gracefully: in-flight requests, or a worker's active jobs, are finished first.`

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0] ?? 'serve'
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage)
    return 0
  }
  if (cmd !== 'serve' && cmd !== 'worker') {
    console.error(`tabr-serve: unknown command ${JSON.stringify(cmd)}\n\n${usage}`)
    return 2
  }
  if (cmd === 'worker') {
    const worker = await startWorker(loadConfig(process.env, { role: 'worker' }))
    const stop = () => void worker.shutdown().then(() => process.exit(process.exitCode ?? 0))
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
    return -1
  }
  const running = await start(loadConfig())
  const stop = () => void running.shutdown().then(() => process.exit(process.exitCode ?? 0))
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  running.ready.catch((e: Error) => {
    console.error(`tabr-serve: ${e.message}`)
    process.exitCode = 1
    stop()
  })
  return -1
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code)
  },
  (e: unknown) => {
    // One clear line for configuration problems; nothing else reaches the terminal unlogged.
    console.error(`tabr-serve: ${e instanceof ConfigError ? e.message : e instanceof Error ? e.message : String(e)}`)
    process.exit(1)
  },
)
