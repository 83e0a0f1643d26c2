// Listening and lifecycle: start the HTTP server, load eager models (so /readyz turns 200),
// and shut down gracefully: stop accepting, let in-flight requests finish up to
// SHUTDOWN_TIMEOUT_S, then close what is left, close Redis (queue mode) and remove the upload
// folder.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createService, type Service } from './app.js'
import type { Config } from './core/config.js'
import { checkThreadPool } from './core/threadpool.js'

export interface Running {
  server: Server
  service: Service
  url: string
  /** Resolves once eager models are loaded (rejects with the registry's one-line error). */
  ready: Promise<void>
  /** Graceful shutdown; resolves when the server is closed. */
  shutdown(): Promise<void>
}

export async function start(config: Config, service: Service = createService(config)): Promise<Running> {
  // Headers that never finish are bounded by REQUEST_TIMEOUT_S like bodies (Node's defaults
  // let a slow client hold a connection 60 s and more, checked every 30 s). Node's own whole-
  // request bound stays above ours, so a slow body gets the service's 408, not Node's.
  const server = createServer(
    {
      headersTimeout: config.requestTimeoutMs,
      requestTimeout: config.requestTimeoutMs + 10_000,
      connectionsCheckingInterval: Math.min(1000, config.requestTimeoutMs),
    },
    service.app,
  )
  server.keepAliveTimeout = 65_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(config.port, config.host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`
  service.logger.info({ url, models: config.registry.map((e) => e.name), mode: config.executionMode }, 'listening')
  if (config.executionMode === 'sync') checkThreadPool(config.concurrency, config.featureConcurrency, service.logger)
  const ready = config.modelLoading === 'eager' ? service.registry.loadAll() : Promise.resolve()
  ready.then(
    () => service.logger.info('models ready'),
    () => {},
  )

  let closing: Promise<void> | undefined
  const shutdown = () =>
    (closing ??= new Promise<void>((resolve) => {
      service.logger.info('shutting down: finishing in-flight requests')
      const force = setTimeout(() => server.closeAllConnections(), config.shutdownTimeoutMs)
      // Keep-alive connections turn idle as their last response ends: close them as they do.
      const drain = setInterval(() => server.closeIdleConnections(), 50)
      server.close(() => {
        clearTimeout(force)
        clearInterval(drain)
        void service.dispose().then(resolve)
      })
      server.closeIdleConnections()
    }))
  return { server, service, url, ready, shutdown }
}
