// The page: "one question, one video". The participant enters the token once (kept in
// sessionStorage only), picks a model, reads the question, then records an answer (a visible
// countdown and a progress ring; it stops by itself at the service's maximum length) or uploads
// a file. The answer shows the label, the probabilities as bars, what the video held, and the
// motion of each face region over time with the strongest moment marked; clicking the chart
// seeks the video there. When the model has evidence outputs, the answer also shows the
// training clips the prediction drew on and how unlike them this recording is (a gauge and a
// sentence); recording-quality warnings come first, with a "Record again" button. Errors are sentences (messages.ts), never JSON. Preact keeps it small
// and escapes every string it renders.
import { render } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import type uPlot from 'uplot'
import { type Evidence, infer, listModels, pageConfig, questions as loadQuestions, ServiceError, token, Unauthorized, type Answer, type ModelEntry, type PageConfig } from './api.js'
import { drawChart, regionMotion, strongest, type Moment } from './chart.js'
import { sentenceFor } from './messages.js'
import { openCamera, Recorder, type Recording } from './recorder.js'
import './style.css'

type Phase =
  | { kind: 'idle' }
  | { kind: 'countdown'; n: number }
  | { kind: 'recording'; recorder: Recorder; elapsed: number }
  | { kind: 'recorded'; rec: Recording }
  | { kind: 'sending'; progress: number }
  | { kind: 'answered'; answer: Answer; labels?: string[] }

const COUNTDOWN_S = 3

function TokenPrompt({ onToken, rejected }: { onToken: (t: string) => void; rejected: boolean }) {
  const [value, setValue] = useState('')
  return (
    <form
      class="card"
      aria-labelledby="token-title"
      onSubmit={(e) => {
        e.preventDefault()
        if (value.trim()) onToken(value.trim())
      }}
    >
      <h2 id="token-title">Access token</h2>
      {rejected && (
        <p class="error" role="alert">
          The access token was not accepted. Please enter it again.
        </p>
      )}
      <label for="token">Token from the study team</label>
      <input id="token" name="token" type="password" autocomplete="off" value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} required />
      <button type="submit">Continue</button>
    </form>
  )
}

function Ring({ fraction, label }: { fraction: number; label: string }) {
  const r = 36
  const c = 2 * Math.PI * r
  return (
    <svg class="ring" viewBox="0 0 80 80" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(fraction * 100)}>
      <circle cx="40" cy="40" r={r} class="ring-bg" />
      <circle cx="40" cy="40" r={r} class="ring-fg" stroke-dasharray={c} stroke-dashoffset={c * (1 - Math.min(1, fraction))} transform="rotate(-90 40 40)" />
      <text x="40" y="45" text-anchor="middle">
        {label}
      </text>
    </svg>
  )
}

/** Novelty at or above this reads as "unlike the training clips" (95th percentile). */
const NOVEL = 0.95
/** At or above this, "less typical" (80th percentile). */
const UNUSUAL = 0.8

/** The sentence a novelty value reads as. */
function noveltySentence(novelty: number): string {
  if (novelty >= NOVEL) return 'This recording is unlike the clips the model was trained on: treat its answer with caution.'
  if (novelty >= UNUSUAL) return 'This recording is less typical of the clips the model was trained on.'
  return 'This recording resembles the clips the model was trained on.'
}

function EvidenceView({ evidence }: { evidence: Evidence }) {
  const pct = Math.round(evidence.novelty * 100)
  return (
    <section class="evidence" aria-labelledby="evidence-title" data-testid="evidence">
      <h3 id="evidence-title">How far to trust it</h3>
      <p class={evidence.novelty >= NOVEL ? 'warning' : undefined} data-testid="novelty-sentence">
        {noveltySentence(evidence.novelty)}
      </p>
      <p class="gauge-row">
        <span class="bar-name">Novelty</span>
        {/* biome-ignore lint/a11y/useSemanticElements: a styled bar; <meter> cannot be styled the same across browsers */}
        <span class="bar" role="meter" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct} aria-label="Novelty" data-testid="novelty">
          <span class={`bar-fill${evidence.novelty >= NOVEL ? ' novel' : ''}`} style={{ width: `${pct}%` }} />
        </span>
        <span class="bar-value">{pct} %</span>
      </p>
      <p class="hint">This recording is farther from its nearest training clip than {pct} % of the training clips are from theirs.</p>
      <h4>Closest training examples</h4>
      <ol class="neighbours" data-testid="neighbours">
        {evidence.neighbours.map((n) => (
          <li key={n.id}>
            <strong>{n.label ?? n.value?.toFixed(3)}</strong> · weight {(n.weight * 100).toFixed(1)} % · <span class="id">{n.id}</span>
          </li>
        ))}
      </ol>
    </section>
  )
}

function Result({ answer, labels: names, videoUrl, onRecordAgain }: { answer: Answer; labels?: string[]; videoUrl?: string; onRecordAgain: () => void }) {
  const chartEl = useRef<HTMLDivElement>(null)
  const videoEl = useRef<HTMLVideoElement>(null)
  const [moment, setMoment] = useState<Moment>()
  const p = answer.prediction
  const labels = (p.probabilities ?? []).map((v, i) => [i, v] as const)
  /** Moves the video to `t` seconds (and focus to it when a person asked). */
  const seek = (t: number, focus = true) => {
    const v = videoEl.current
    if (!v) return
    v.currentTime = Math.min(t, Number.isFinite(v.duration) ? v.duration : t)
    if (focus) v.focus()
  }
  useEffect(() => {
    if (!answer.series || !chartEl.current) return
    const { names, columns } = regionMotion(answer.series)
    const m = strongest(answer.series.t_s, names, columns)
    setMoment(m)
    // The video opens at the strongest moment (a frame of the face, not a black first frame).
    const v = videoEl.current
    if (m && v) {
      if (v.readyState >= 1) seek(m.t, false)
      else v.addEventListener('loadedmetadata', () => seek(m.t, false), { once: true })
    }
    let plot: uPlot | undefined = drawChart(chartEl.current, answer.series.t_s, names, columns, m, seek)
    return () => {
      plot?.destroy()
      plot = undefined
    }
  }, [answer])
  return (
    <section class="card result" aria-labelledby="result-title" data-testid="result">
      <h2 id="result-title">Result</h2>
      {answer.video && answer.video.quality.warnings.length > 0 && (
        <div class="quality" role="alert" data-testid="quality-warnings">
          <p>
            <strong>The recording may not be good enough for a reliable answer:</strong>
          </p>
          <ul>
            {answer.video.quality.warnings.map((w) => (
              <li key={w.code} data-code={w.code}>
                {w.message}
              </li>
            ))}
          </ul>
          <button type="button" onClick={onRecordAgain} data-testid="record-again">
            Record again
          </button>
        </div>
      )}
      {p.label !== undefined && (
        <p class="label">
          Prediction: <strong data-testid="label">{p.label}</strong>
        </p>
      )}
      {p.value !== undefined && (
        <p class="label">
          Value: <strong data-testid="value">{p.value.toFixed(3)}</strong>
        </p>
      )}
      {labels.length > 0 && (
        <ul class="bars" aria-label="Probabilities" data-testid="probabilities">
          {labels.map(([i, v]) => (
            <li key={i}>
              <span class="bar-name">{names?.[i] ?? `class ${i}`}</span>
              {/* biome-ignore lint/a11y/useSemanticElements: a styled bar; <meter> cannot be styled the same across browsers */}
              <span class="bar" role="meter" aria-valuemin={0} aria-valuemax={1} aria-valuenow={v} aria-label={names?.[i] ?? `class ${i}`}>
                <span class="bar-fill" style={{ width: `${(v * 100).toFixed(1)}%` }} />
              </span>
              <span class="bar-value">{(v * 100).toFixed(1)} %</span>
            </li>
          ))}
        </ul>
      )}
      {answer.evidence && <EvidenceView evidence={answer.evidence} />}
      {answer.video && (
        <dl class="facts">
          <dt>Frames</dt>
          <dd>{answer.video.frames}</dd>
          <dt>Frame rate</dt>
          <dd>{answer.video.fps.toFixed(1)} fps</dd>
          <dt>Duration</dt>
          <dd>{answer.video.duration_s.toFixed(2)} s</dd>
          <dt>Face found</dt>
          <dd>{Math.round(answer.video.face_detect_rate * 100)} % of tries</dd>
        </dl>
      )}
      {answer.series && (
        <>
          <h3>Motion over time, per face region</h3>
          {moment && (
            <p>
              Strongest movement at <strong data-testid="moment">{moment.t.toFixed(2)} s</strong> ({moment.region}): the highest point of the chart.{' '}
              <button type="button" onClick={() => seek(moment.t)}>
                Show this moment
              </button>
            </p>
          )}
          {/* biome-ignore lint/a11y/useAriaPropsSupportedByRole: the chart drawn into this div is described by its label */}
          <div ref={chartEl} class="chart" data-testid="chart" aria-label="Motion of each face region over time; click to jump the video there" />
        </>
      )}
      {/* biome-ignore lint/a11y/useMediaCaption: the playback of the user's own recording; there is nothing to caption */}
      {videoUrl && <video ref={videoEl} class="playback" src={videoUrl} controls playsInline aria-label="Your video" data-testid="playback" />}
    </section>
  )
}

function App() {
  const [authed, setAuthed] = useState(Boolean(token.get()))
  const [rejected, setRejected] = useState(false)
  const [models, setModels] = useState<ModelEntry[]>([])
  const [model, setModel] = useState('')
  const [cfg, setCfg] = useState<PageConfig>({ max_video_seconds: 10, max_upload_mb: 64 })
  const [question, setQuestion] = useState('')
  const [phase, setPhase] = useState<Phase>({ kind: 'idle' })
  const [error, setError] = useState<string>()
  const [videoUrl, setVideoUrl] = useState<string>()
  const [dragging, setDragging] = useState(false)
  const preview = useRef<HTMLVideoElement>(null)
  const stream = useRef<MediaStream>()
  const maxRecord = Math.max(1, Math.min(cfg.max_video_seconds - 0.5, 10))

  /** Any failure: a 401 asks for the token again; anything else is a sentence. */
  const fail = (e: unknown) => {
    if (e instanceof Unauthorized) {
      token.clear()
      setRejected(true)
      setAuthed(false)
      setPhase({ kind: 'idle' })
      return
    }
    setError(e instanceof ServiceError ? sentenceFor(e.code, e.retryAfterS) : sentenceFor('internal'))
    setPhase({ kind: 'idle' })
  }

  useEffect(() => {
    pageConfig().then(setCfg, () => {})
    const asked = new URLSearchParams(location.search).get('question')
    if (asked) setQuestion(asked)
    else
      loadQuestions().then(
        (qs) => setQuestion(qs[0] ?? ''),
        () => {},
      )
  }, [])

  useEffect(() => {
    if (!authed) return
    listModels().then((ms) => {
      setModels(ms)
      setModel((m) => m || ms[0]?.name || '')
    }, fail)
  }, [authed])

  const stopCamera = () => {
    stream.current?.getTracks().forEach((t) => t.stop())
    stream.current = undefined
  }

  const record = async () => {
    setError(undefined)
    try {
      stream.current = await openCamera()
    } catch {
      setError('We could not use your camera. Allow camera access in your browser, or upload a video instead.')
      return
    }
    if (preview.current) {
      preview.current.srcObject = stream.current
      void preview.current.play().catch(() => {})
    }
    for (let n = COUNTDOWN_S; n > 0; n--) {
      setPhase({ kind: 'countdown', n })
      await new Promise((r) => setTimeout(r, 1000))
    }
    const recorder = new Recorder(stream.current, maxRecord)
    setPhase({ kind: 'recording', recorder, elapsed: 0 })
    const tick = setInterval(() => setPhase((p) => (p.kind === 'recording' ? { ...p, elapsed: recorder.elapsed() } : p)), 100)
    const rec = await recorder.finished()
    clearInterval(tick)
    stopCamera()
    if (preview.current) preview.current.srcObject = null
    setVideoUrl((old) => {
      if (old) URL.revokeObjectURL(old)
      return URL.createObjectURL(rec.blob)
    })
    setPhase({ kind: 'recorded', rec })
  }

  const send = async (video: Blob, filename: string) => {
    setError(undefined)
    if (video.size > cfg.max_upload_mb * 1024 * 1024) return setError(sentenceFor('payload_too_large'))
    setPhase({ kind: 'sending', progress: 0 })
    try {
      const entry = models.find((m) => m.name === model) ?? { name: model }
      const answer = await infer(entry, video, filename, (progress) => setPhase({ kind: 'sending', progress }))
      setPhase({ kind: 'answered', answer, labels: entry?.labels })
    } catch (e) {
      fail(e)
    }
  }

  const choose = (file: File | undefined) => {
    if (!file) return
    setVideoUrl((old) => {
      if (old) URL.revokeObjectURL(old)
      return URL.createObjectURL(file)
    })
    void send(file, file.name)
  }

  if (!authed)
    return (
      <main>
        <h1>One question, one video</h1>
        <TokenPrompt
          rejected={rejected}
          onToken={(t) => {
            token.set(t)
            setRejected(false)
            setAuthed(true)
          }}
        />
      </main>
    )

  const busy = phase.kind === 'countdown' || phase.kind === 'recording' || phase.kind === 'sending'
  return (
    <main>
      <h1>One question, one video</h1>
      <section class="card" aria-labelledby="question-title">
        <label for="model">Model</label>
        <select id="model" value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)} disabled={busy}>
          {models.map((m) => (
            <option key={m.name} value={m.name}>
              {m.name}
              {m.version ? ` ${m.version}` : ''}
            </option>
          ))}
        </select>
        <h2 id="question-title">Question</h2>
        <p class="question" data-testid="question">
          {question || 'Please answer the question you were given.'}
        </p>
        <p class="hint">Answer looking at the camera, in good light. Recording stops by itself after {Math.floor(maxRecord)} seconds.</p>
        <div class="camera">
          <video ref={preview} class="preview" muted playsInline aria-label="Camera preview" hidden={phase.kind !== 'countdown' && phase.kind !== 'recording'} />
          {phase.kind === 'countdown' && (
            <p class="countdown" role="status" aria-live="assertive" data-testid="countdown">
              Recording starts in {phase.n}
            </p>
          )}
          {phase.kind === 'recording' && <Ring fraction={phase.elapsed / maxRecord} label={`${phase.elapsed.toFixed(1)} s`} />}
        </div>
        <div class="actions">
          {phase.kind === 'recording' ? (
            <button type="button" onClick={() => void phase.recorder.stop()} data-testid="stop">
              Stop recording
            </button>
          ) : (
            <button type="button" onClick={() => void record()} disabled={busy || !model} data-testid="record">
              {phase.kind === 'recorded' ? 'Record again' : 'Record my answer'}
            </button>
          )}
          {phase.kind === 'recorded' && (
            <button type="button" class="primary" onClick={() => void send(phase.rec.blob, phase.rec.filename)} data-testid="send">
              Send my answer
            </button>
          )}
        </div>
        {/* biome-ignore lint/a11y/noStaticElementInteractions: a drop zone for files; its <input type="file"> is the accessible control */}
        <div
          class={`drop${dragging ? ' dragging' : ''}`}
          onDragOver={(e) => {
            e.preventDefault()
            setDragging(true)
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => {
            e.preventDefault()
            setDragging(false)
            if (!busy) choose(e.dataTransfer?.files[0])
          }}
        >
          <label for="file">Or upload a video file (drop it here or choose one)</label>
          <input id="file" type="file" accept="video/*" disabled={busy || !model} onChange={(e) => choose((e.target as HTMLInputElement).files?.[0])} data-testid="file" />
        </div>
        {phase.kind === 'sending' && (
          <div class="sending" role="status" aria-live="polite">
            <Ring fraction={phase.progress} label={`${Math.round(phase.progress * 100)} %`} />
            <p>{phase.progress < 1 ? 'Uploading your video…' : 'Looking at your video…'}</p>
          </div>
        )}
        {error && (
          <p class="error" role="alert" data-testid="error">
            {error}
          </p>
        )}
      </section>
      {phase.kind === 'answered' && <Result answer={phase.answer} labels={phase.labels} videoUrl={videoUrl} onRecordAgain={() => void record()} />}
    </main>
  )
}

render(<App />, document.getElementById('app')!)
