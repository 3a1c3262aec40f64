//! The one place herd parses YAML.
//!
//! The parser is `yaml_serde`, the maintained fork of the archived serde_yaml;
//! keeping every parse behind this module means a change of parser touches
//! this file only. Callers get their own
//! types back (values as `serde_json::Value`), and errors as [`SourceError`]s
//! that point at the file, line and column.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::source::SourceError;

/// Parses `text` (the contents of `file`) into `T`.
///
/// Syntax errors, unknown keys (types use `deny_unknown_fields`), wrong types
/// and duplicate keys all come back with their position.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, SourceError> {
    yaml_serde::from_str(text).map_err(|error| {
        let (line, column) = error
            .location()
            .map_or((1, 1), |at| (at.line(), at.column()));
        SourceError::at(file, text, line, column, clean_message(&error.to_string()))
    })
}

/// The parser appends " at line L column C" to its messages; herd shows the
/// position separately, so the suffix goes.
fn clean_message(message: &str) -> String {
    let mut message = message.to_string();
    // Syntax errors carry the position mid-sentence too ("... at line 5 column 4, while ...").
    while let Some(start) = message.find(" at line ") {
        let rest = &message[start + " at line ".len()..];
        let Some(column) = rest.find(" column ") else {
            break;
        };
        let after = &rest[column + " column ".len()..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let end = start + " at line ".len() + column + " column ".len() + digits;
        message.replace_range(start..end, "");
    }
    message
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
}

/// Finds where `needle` is written in `text`, preferring an occurrence at or
/// after byte `from`. Used to point at a value (a template, a host pattern)
/// that was found to be wrong after parsing.
pub fn locate(text: &str, needle: &str, from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    let from = from.min(text.len());
    text.get(from..)
        .and_then(|rest| rest.find(needle))
        .map(|i| i + from)
        .or_else(|| text.find(needle))
}

/// Finds where a mapping key is written (`key:` at the start of a line, after
/// indentation and an optional `- `), preferring occurrences after `from`.
pub fn locate_key(text: &str, key: &str, from: usize) -> Option<usize> {
    let candidates = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    let mut best: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start_matches([' ', '-']);
        let indent = line.len() - trimmed.len();
        if candidates.iter().any(|c| trimmed.starts_with(c.as_str())) {
            let at = offset + indent;
            if at >= from {
                return Some(at);
            }
            best.get_or_insert(at);
        }
        offset += line.len();
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        count: u32,
    }

    #[test]
    fn unknown_key_points_at_it() {
        let text = "name: x\ncount: 1\ncolour: red\n";
        let error = parse::<Doc>(Path::new("d.yml"), text).unwrap_err();
        assert_eq!(error.location.line, 3);
        assert_eq!(error.location.column, 1);
        assert!(
            error.message.starts_with("unknown key `colour`"),
            "{}",
            error.message
        );
    }

    #[test]
    fn wrong_type_points_at_value() {
        let text = "name: x\ncount: many\n";
        let error = parse::<Doc>(Path::new("d.yml"), text).unwrap_err();
        assert_eq!((error.location.line, error.location.column), (2, 8));
        assert!(error.message.contains("invalid type"), "{}", error.message);
    }

    #[test]
    fn syntax_errors_do_not_repeat_the_position() {
        let text = "a:\n  b: 1\n c: 2\n";
        let error = parse::<serde_json::Value>(Path::new("d.yml"), text).unwrap_err();
        assert!(!error.message.contains(" at line "), "{}", error.message);
        assert_eq!(error.location.line, 3);
    }

    #[test]
    fn keys_are_located_after_an_offset() {
        let text = "a:\n  b: 1\nc:\n  b: 2\n";
        assert_eq!(locate_key(text, "b", 0), Some(5));
        assert_eq!(locate_key(text, "b", 6), Some(15));
        assert_eq!(locate(text, "2", 0), Some(18));
    }
}
