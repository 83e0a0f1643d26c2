// What a participant reads when something goes wrong: one plain sentence per error code the
// service can answer (core/errors.ts in @org/tabr-serve defines the codes; a server test holds
// this table to that list). Never the raw JSON or the service's technical message.
export const SENTENCES: Record<string, string> = {
  bad_request: 'The request could not be read. Please reload the page and try again.',
  unauthorized: 'The access token was not accepted. Please enter it again.',
  not_found: 'This part of the service does not exist. Please reload the page.',
  model_not_found: 'The selected model is no longer available. Please pick another one.',
  job_not_found: 'The answer is no longer available. Please send the video again.',
  method_not_allowed: 'The request could not be read. Please reload the page and try again.',
  request_timeout: 'The upload took too long. Check your connection and try again.',
  upload_expired: 'The video waited too long to be processed. Please send it again.',
  payload_too_large: 'The video file is too large. Please record a shorter answer.',
  unsupported_media_type: 'This kind of file cannot be used. Please record or choose a video file.',
  invalid_video: 'The video could not be read. Please record again or choose another file.',
  video_too_long: 'The video is too long. Please keep your answer shorter and try again.',
  video_too_short: 'The video is too short. Please answer for a few seconds.',
  frame_too_large: 'The video has a very high resolution. Please use a smaller video.',
  video_too_large: 'The video holds too much to process. Please use a shorter or smaller video.',
  no_face: 'We could not see a face clearly. Face the camera in good light and try again.',
  invalid_features: 'The data sent could not be used. Please record again.',
  poor_recording: 'The recording is not good enough to answer: the face is too dark, blurred, small or turned away. Please record again.',
  evidence_unavailable: 'This model cannot show the examples it learned from. Please reload the page.',
  callback_not_allowed: 'The request could not be read. Please reload the page and try again.',
  model_error: 'Something went wrong on our side. Please try again in a moment.',
  internal: 'Something went wrong on our side. Please try again in a moment.',
  overloaded: 'The service is busy right now.',
  not_ready: 'The service is still starting.',
  queue_unavailable: 'The service is temporarily unavailable.',
  timeout: 'Processing took too long. Please try a shorter video.',
  aborted: 'Processing was interrupted. Please try again.',
}

/** The sentence for an error code (and when to retry, for the codes that say so). */
export function sentenceFor(code: string, retryAfterS?: number): string {
  const base = SENTENCES[code] ?? SENTENCES.internal!
  if (retryAfterS !== undefined && ['overloaded', 'not_ready', 'queue_unavailable'].includes(code)) {
    return `${base} Please try again in ${retryAfterS} second${retryAfterS === 1 ? '' : 's'}.`
  }
  return ['overloaded', 'not_ready', 'queue_unavailable'].includes(code) ? `${base} Please try again in a moment.` : base
}
