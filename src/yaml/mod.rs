//! The one place herd parses YAML.
//!
//! A file is parsed into a tree that keeps the position of every key and
//! value ([`Node`]), so any check, made now or later, points at the place
//! that is wrong, also when the same text appears twice. Keys written twice
//! are refused, merge keys (`<<: *base`) are applied, and herd's types
//! deserialize from the tree with serde. Errors are [`SourceError`]s naming
//! file, line and column.
//!
//! libyaml (through `yaml_serde`, the maintained fork of serde_yaml) checks
//! the syntax first, as YAML 1.1 tools such as Ansible read it; the tree is
//! then built by `saphyr-parser`, whose events carry their positions.

mod de;
mod tree;
mod yaml11;

use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;

use crate::source::SourceError;

pub use de::{Schema, Spanned};
pub use tree::{CoreTag, Node, Pos, Style, Value};
pub use yaml11::{resolve as resolve_yaml11, Scalar};

/// A parsed file: its name, its text and the tree.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: PathBuf,
    pub text: String,
    pub root: Node,
}

/// Parses `text` (the contents of `file`) into `T`.
///
/// Syntax errors, duplicate keys, unknown keys (types use
/// `deny_unknown_fields`) and wrong types all come back with their position.
#[cfg_attr(not(test), allow(dead_code))]
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, SourceError> {
    Document::load(file, text)?.deserialize()
}

impl Document {
    /// Parses `text`, the contents of `file`, into a tree.
    pub fn load(file: &Path, text: &str) -> Result<Document, SourceError> {
        // The tree first: it stops at the nesting limit, where libyaml's
        // syntax check takes time growing with the cube of the depth (a
        // 200 KB line of `[` kept it busy for a minute). Its other errors
        // wait for libyaml's, whose messages say more.
        let tree = tree::build(text);
        let at =
            |e: tree::TreeError| SourceError::at(file, text, e.at.line, e.at.column, e.message);
        let tree = match tree {
            Err(error) if error.too_deep => return Err(at(error)),
            other => other,
        };
        check_syntax(file, text)?;
        let root = tree.map_err(at)?;
        Ok(Document {
            file: file.to_path_buf(),
            text: text.to_string(),
            root,
        })
    }

    /// The tree as `T`, plain scalars read as YAML 1.2's core schema reads them.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, SourceError> {
        self.deserialize_with(Schema::Core)
    }

    /// The tree as `T`, plain scalars read under `schema`.
    pub fn deserialize_with<T: DeserializeOwned>(&self, schema: Schema) -> Result<T, SourceError> {
        let node = de::NodeDe {
            node: &self.root,
            path: ".".to_string(),
            schema,
        };
        T::deserialize(node).map_err(|error| {
            let (at, path) = error.at.unwrap_or((self.root.at, ".".to_string()));
            let message = clean_message(&error.message);
            let message = match path.as_str() {
                "." => message,
                path => format!("{path}: {message}"),
            };
            self.error(at, message)
        })
    }

    /// An error at `at`.
    pub fn error(&self, at: Pos, message: impl Into<String>) -> SourceError {
        SourceError::at(&self.file, &self.text, at.line, at.column, message)
    }

    /// An error `offset` bytes into the text.
    pub fn error_at_offset(&self, offset: usize, message: impl Into<String>) -> SourceError {
        SourceError::at_offset(&self.file, &self.text, offset, message)
    }

    /// An error at the value found by following `path` from the top (mapping
    /// keys, list indexes as numbers), at `needle` when it is written inside
    /// that value; at the deepest part of `path` that exists otherwise.
    pub fn error_in(
        &self,
        path: &[&str],
        needle: Option<&str>,
        message: impl Into<String>,
    ) -> SourceError {
        let mut node = &self.root;
        for depth in (0..=path.len()).rev() {
            if let Some(found) = self.root.find(&path[..depth]) {
                node = found;
                break;
            }
        }
        let written = self.text.get(node.content_offset()..node.end).unwrap_or("");
        match needle.and_then(|n| (!n.is_empty()).then(|| written.find(n)).flatten()) {
            Some(i) => self.error_at_offset(node.content_offset() + i, message),
            None => self.error(node.at, message),
        }
    }
}

/// libyaml's verdict on the syntax, with its messages and positions.
fn check_syntax(file: &Path, text: &str) -> Result<(), SourceError> {
    for document in yaml_serde::Deserializer::from_str(text) {
        IgnoredAny::deserialize(document).map_err(|error| {
            let (line, column) = error
                .location()
                .map_or((1, 1), |at| (at.line(), at.column()));
            SourceError::at(file, text, line, column, clean_message(&error.to_string()))
        })?;
    }
    Ok(())
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
    fn nesting_past_the_limit_is_refused_before_the_syntax_check() {
        // libyaml's check would take time growing with the cube of this depth.
        for text in [
            format!("x: {}{}", "[".repeat(20_000), "]".repeat(20_000)),
            format!("x: {}1{}", "{a: ".repeat(20_000), "}".repeat(20_000)),
        ] {
            let error = Document::load(Path::new("deep.yml"), &text).unwrap_err();
            assert_eq!(
                error.message,
                "lists and mappings nest deeper than 128 levels here",
                "{}",
                &text[..20]
            );
            assert_eq!(error.location.line, 1);
        }
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
    fn missing_keys_point_at_the_mapping() {
        let text = "a: 1\nb:\n  name: x\n";
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            b: Doc,
        }
        let error = parse::<Outer>(Path::new("d.yml"), text).unwrap_err();
        assert_eq!(error.message, "b: missing key `count`");
        assert_eq!((error.location.line, error.location.column), (3, 3));
    }

    #[test]
    fn errors_name_the_path() {
        let text = "list:\n  - name: x\n    count: -1\n";
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            list: Vec<Doc>,
        }
        let error = parse::<Outer>(Path::new("d.yml"), text).unwrap_err();
        assert!(
            error.message.starts_with("list[0].count: invalid value"),
            "{}",
            error.message
        );
        assert_eq!((error.location.line, error.location.column), (3, 12));
    }

    #[test]
    fn duplicate_keys_are_refused_with_both_places() {
        let text = "name: x\ncount: 1\nname: y\n";
        let error = parse::<Doc>(Path::new("d.yml"), text).unwrap_err();
        assert_eq!(
            error.to_string(),
            "duplicate key `name`: it is already written at line 1, column 1\n  --> d.yml:3:1\n  |\n3 | name: y\n  | ^"
        );
    }

    #[test]
    fn nodes_point_inside_themselves() {
        let text = "run: |\n  echo one\n  echo {{ two }}\n";
        let document = Document::load(Path::new("d.yml"), text).unwrap();
        let error = document.error_in(&["run"], Some("two"), "bad");
        assert_eq!((error.location.line, error.location.column), (3, 11));
        // A block scalar starts on its first line of text.
        let error = document.error_in(&["run"], Some("absent"), "bad");
        assert_eq!((error.location.line, error.location.column), (2, 3));
    }
}
