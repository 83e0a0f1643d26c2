// The camera: getUserMedia (video only) and MediaRecorder, stopped by the caller or by itself
// at `maxSeconds` (the service's limit), so a recording is never refused for its length.

export interface Recording {
  blob: Blob
  filename: string
}

export async function openCamera(): Promise<MediaStream> {
  return navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false })
}

/** The container the browser records: WebM (VP8/VP9) where it can, else what it offers. */
function mimeType(): string | undefined {
  return ['video/webm;codecs=vp8', 'video/webm;codecs=vp9', 'video/webm', 'video/mp4'].find((t) => MediaRecorder.isTypeSupported(t))
}

export class Recorder {
  private readonly recorder: MediaRecorder
  private readonly chunks: Blob[] = []
  private readonly done: Promise<Recording>
  private timer?: ReturnType<typeof setTimeout>
  readonly startedAt = performance.now()

  constructor(stream: MediaStream, maxSeconds: number) {
    const type = mimeType()
    this.recorder = new MediaRecorder(stream, type ? { mimeType: type } : {})
    this.done = new Promise((resolve, reject) => {
      this.recorder.ondataavailable = (e) => e.data.size && this.chunks.push(e.data)
      this.recorder.onerror = () => reject(new Error('recording failed'))
      this.recorder.onstop = () => {
        const blobType = this.recorder.mimeType || 'video/webm'
        resolve({ blob: new Blob(this.chunks, { type: blobType }), filename: blobType.includes('mp4') ? 'answer.mp4' : 'answer.webm' })
      }
    })
    this.recorder.start(250)
    this.timer = setTimeout(() => this.stop(), maxSeconds * 1000)
  }

  /** Seconds recorded so far. */
  elapsed(): number {
    return (performance.now() - this.startedAt) / 1000
  }

  stop(): Promise<Recording> {
    clearTimeout(this.timer)
    if (this.recorder.state !== 'inactive') this.recorder.stop()
    return this.done
  }

  finished(): Promise<Recording> {
    return this.done
  }
}
