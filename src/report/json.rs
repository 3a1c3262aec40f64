//! `--output json`: one JSON object per event on stdout (schema in the README).

use serde_json::Value;

use super::{write_out, Reporter};
use crate::event::Event;

/// Bumped when a field changes meaning or goes away; new fields do not bump it.
pub const SCHEMA_VERSION: u64 = 1;

pub struct JsonReporter;

impl Reporter for JsonReporter {
    fn handle(&mut self, event: &Event) {
        let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("schema".into(), Value::from(SCHEMA_VERSION));
        }
        write_out(&mut std::io::stdout().lock(), &format!("{value}\n"));
    }
}
