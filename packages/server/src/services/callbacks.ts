// Callbacks: a client's `callback_url` receives the final job JSON (the body of GET /jobs/{id}),
// signed. Only hosts of CALLBACK_ALLOWED_HOSTS are accepted, checked at submit time (422) and
// again before each delivery; redirects are not followed, so the allow-list is the only way
// out (no SSRF). Receivers verify `X-Signature: sha256=<hex HMAC-SHA256(CALLBACK_SECRET, raw
// body)>` and may de-duplicate on `X-Job-Id`.
import { createHmac } from 'node:crypto'
import { ApiError } from '../core/errors.js'

export class CallbackPolicy {
  constructor(
    private readonly hosts: string[],
    private readonly secret: string,
  ) {}

  get enabled(): boolean {
    return this.hosts.length > 0 && this.secret.length > 0
  }

  /** The URL, normalised, or a 422 saying why it is refused. */
  check(raw: unknown): string {
    const refuse = (why: string) => new ApiError('callback_not_allowed', `callback_url: ${why}`)
    if (!this.enabled) throw refuse('callbacks are not enabled on this service (CALLBACK_ALLOWED_HOSTS)')
    if (typeof raw !== 'string' || raw.length > 2048) throw refuse('must be one http(s) URL of at most 2048 characters')
    let url: URL
    try {
      url = new URL(raw)
    } catch {
      throw refuse('is not a URL')
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refuse('must be http or https')
    if (url.username || url.password) throw refuse('must not carry credentials')
    // An entry `host` allows any port, `host:port` that port only.
    const hostname = url.hostname.toLowerCase()
    const port = url.port || (url.protocol === 'https:' ? '443' : '80')
    const allowed = this.hosts.some((h) => h === hostname || h === `${hostname}:${port}`)
    if (!allowed) throw refuse(`the host ${JSON.stringify(url.hostname)} is not in the allow-list`)
    return url.toString()
  }

  sign(body: string): string {
    return `sha256=${createHmac('sha256', this.secret).update(body).digest('hex')}`
  }

  /** POSTs `body` once; throws on anything but a 2xx, so the queue retries with backoff. */
  async deliver(url: string, jobId: string, body: string): Promise<void> {
    const target = this.check(url)
    const res = await fetch(target, {
      method: 'POST',
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
      headers: { 'Content-Type': 'application/json', 'User-Agent': 'tabr-serve', 'X-Job-Id': jobId, 'X-Signature': this.sign(body) },
      body,
    })
    await res.body?.cancel()
    if (res.status < 200 || res.status >= 300) throw new Error(`callback answered ${res.status}`)
  }
}
