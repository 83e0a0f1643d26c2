//! The shapes other languages restate, described by the core so they can be generated
//! instead (`make contracts` writes the service's `native.generated.ts` and the Python
//! tooling's `specs.json` from them; a test fails when those files are stale).
//!
//! The metadata shapes are JSON Schemas derived from the Rust types themselves (schemars), so
//! a field added to [`Meta`] or [`VideoSummary`] reaches the TypeScript types, the OpenAPI
//! document and the browser client's types through the generator, with its doc comment as
//! its description. The error codes are [`ErrorCode::ALL`], the specs [`Spec::describe`].

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Value};

use crate::extract::{Meta, Quality, StageTimings, VideoSummary};
#[cfg(doc)]
use crate::{ErrorCode, Spec};

/// One type's schema (JSON Schema 2020-12), its named sub-shapes under `$defs`: the generator
/// gives each its own TypeScript type, and writes them in place for the OpenAPI document.
fn schema<T: JsonSchema>() -> Value {
    SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// JSON Schemas of the metadata the core reports, by name: `Meta` (all of it, as
/// `tabr-features --meta` prints it), `VideoSummary` (the `video` object of a service answer),
/// `Quality` (how good the recording was) and `StageTimings` (milliseconds per stage).
pub fn schemas() -> Value {
    json!({
        "Meta": schema::<Meta>(),
        "VideoSummary": schema::<VideoSummary>(),
        "Quality": schema::<Quality>(),
        "StageTimings": schema::<StageTimings>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field a shape serialises is a property of its schema, and the other way round.
    #[test]
    fn schemas_name_every_serialised_field() {
        let s = schemas();
        let sorted = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
            k.sort();
            k
        };
        let props = |name: &str| sorted(&s[name]["properties"]);
        let t = StageTimings::default();
        assert_eq!(
            props("StageTimings"),
            sorted(&serde_json::to_value(t).expect("serialises"))
        );
        let m = Meta {
            frames: 1,
            pairs: 0,
            fps: 1.0,
            width: 2,
            height: 2,
            duration_s: 1.0,
            detect_tries: 0,
            detect_hits: 0,
            face_detect_rate: 0.0,
            box_changes: 0,
            decode_errors: 0,
            boxes: vec![],
            timings_ms: t,
            quality: crate::extract::quality::QualityAcc::default()
                .finish(0.0, &crate::extract::QualityThresholds::default()),
        };
        assert_eq!(
            props("Meta"),
            sorted(&serde_json::to_value(&m).expect("serialises"))
        );
        let v = serde_json::to_value(VideoSummary::from(&m)).expect("serialises");
        assert_eq!(props("VideoSummary"), sorted(&v));
        let doc = &s["StageTimings"]["properties"]["decode"]["description"];
        assert_eq!(doc.as_str(), Some("Reading and gray conversion."));
    }
}
