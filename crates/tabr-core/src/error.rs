//! Stable error codes of the extractor.
//!
//! Every failure that can reach a caller is one [`Error`] variant with a stable, snake_case
//! [`Error::code`] and a human sentence that never names a file path or quotes a library
//! message. Codes are the contract across the napi boundary and the HTTP API; messages are
//! for people and may change.

use std::fmt;

/// The stable error codes of the extractor (and, later, of model loading and inference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The input cannot be opened or decoded as a video with a video stream.
    InvalidVideo,
    /// More decoded frames than `ceil(fps × max_seconds)`.
    VideoTooLong,
    /// Fewer than two decoded frames.
    VideoTooShort,
    /// A frame with more pixels than `max_pixels`.
    FrameTooLarge,
    /// More decoding work than the limits: more frames than `ceil(max_frame_rate × max_seconds)`,
    /// or more pixels (frames × pixels per frame) than `max_decoded_pixels`.
    VideoTooLarge,
    /// No face, or faces in fewer than `min_face_rate` of the detection tries.
    NoFace,
    /// A feature vector that does not fit the model (wrong length, non-finite values).
    InvalidFeatures,
    /// A recording-quality warning the model's manifest refuses (`quality.refuse`): the
    /// person should record again.
    PoorRecording,
    /// A model directory or runtime that cannot be used.
    ModelError,
    /// The caller aborted the work.
    Aborted,
    /// A bug or an environment fault; details go to logs, never to callers.
    Internal,
}

impl ErrorCode {
    /// Every code, in a fixed order (for docs and exhaustive tests).
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::InvalidVideo,
        ErrorCode::VideoTooLong,
        ErrorCode::VideoTooShort,
        ErrorCode::FrameTooLarge,
        ErrorCode::VideoTooLarge,
        ErrorCode::NoFace,
        ErrorCode::InvalidFeatures,
        ErrorCode::PoorRecording,
        ErrorCode::ModelError,
        ErrorCode::Aborted,
        ErrorCode::Internal,
    ];

    /// The stable string form, e.g. `"no_face"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidVideo => "invalid_video",
            ErrorCode::VideoTooLong => "video_too_long",
            ErrorCode::VideoTooShort => "video_too_short",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::VideoTooLarge => "video_too_large",
            ErrorCode::NoFace => "no_face",
            ErrorCode::InvalidFeatures => "invalid_features",
            ErrorCode::PoorRecording => "poor_recording",
            ErrorCode::ModelError => "model_error",
            ErrorCode::Aborted => "aborted",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An extractor failure: a stable code plus a path-free human message.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    code: ErrorCode,
    message: String,
}

impl Error {
    /// A new error. `message` must not contain file paths or library output.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human sentence (no paths, no library text).
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid_video(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidVideo, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub(crate) fn aborted() -> Self {
        Self::new(
            ErrorCode::Aborted,
            "the extraction was aborted by the caller",
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(
                s.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "{s}"
            );
            assert!(seen.insert(s), "duplicate code {s}");
        }
    }
}
