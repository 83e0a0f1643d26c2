#!/usr/bin/env node
// `tabr-serve serve`: the HTTP service, configured from the environment (and .env).
import { ConfigError, loadConfig } from '../core/config.js'
import { start } from '../server.js'

const usage = `usage: tabr-serve serve

Serves the models of MODEL_REGISTRY over HTTP. Settings come from the environment and .env
(see .env.example). SIGTERM or SIGINT shuts down gracefully.`

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0] ?? 'serve'
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage)
    return 0
  }
  if (cmd !== 'serve') {
    console.error(`tabr-serve: unknown command ${JSON.stringify(cmd)}\n\n${usage}`)
    return 2
  }
  const config = loadConfig()
  const running = await start(config)
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
