//! Positions in user files and the error type that points at them.
//!
//! Every mistake found in an inventory or a playbook is reported the same way:
//! a one-line message, then `--> file:line:col`, the offending line and a caret
//! under the fault, so an operator can jump straight to it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based line and column in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: &Path, line: usize, column: usize) -> Self {
        Location {
            file: file.to_path_buf(),
            line: line.max(1),
            column: column.max(1),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// An error in a user file: what is wrong, where, and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub message: String,
    pub location: Location,
    /// The text of the offending line, when the file could be read.
    pub line_text: Option<String>,
}

impl SourceError {
    /// Builds an error at `line`:`column` of `file`, whose full text is `text`.
    pub fn at(
        file: &Path,
        text: &str,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        let location = Location::new(file, line, column);
        // A fault at the very end of a file is on the empty line after the last one.
        let line_text = text
            .lines()
            .nth(location.line - 1)
            .or_else(|| (location.line == text.lines().count() + 1).then_some(""))
            .map(str::to_string);
        SourceError {
            message: message.into(),
            location,
            line_text,
        }
    }

    /// Builds an error at a byte offset of `text`.
    pub fn at_offset(file: &Path, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_col(text, offset);
        Self::at(file, text, line, column, message)
    }
}

/// Turns a byte offset into a 1-based line and column (columns count characters).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Refuses a path that is not a regular file, or `/dev/null`, without
/// opening it.
pub fn regular_file(path: &Path) -> Result<(), ReadError> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() || path == Path::new("/dev/null") {
        Ok(())
    } else if meta.is_dir() {
        Err(ReadError::NotAFile("a directory"))
    } else {
        Err(ReadError::NotAFile("not a regular file"))
    }
}

/// Why a user file could not be read as text.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it is {0}")]
    NotAFile(&'static str),
    #[error("it is not UTF-8 text: the byte at offset {offset} (line {line}) is not valid UTF-8")]
    NotUtf8 { offset: usize, line: usize },
}

/// Reads a user file that must be UTF-8 text, naming where it is not. It
/// must be a regular file (or `/dev/null`, an empty one): a fifo would
/// block the run and a device such as `/dev/zero` never ends.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    regular_file(path)?;
    let bytes = std::fs::read(path)?;
    String::from_utf8(bytes).map_err(|error| {
        let offset = error.utf8_error().valid_up_to();
        let line = error.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        ReadError::NotUtf8 { offset, line }
    })
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.message)?;
        write!(f, "  --> {}", self.location)?;
        if let Some(text) = &self.line_text {
            let number = self.location.line.to_string();
            let pad = " ".repeat(number.len());
            let caret_pad: String = text
                .chars()
                .take(self.location.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{pad} |\n{number} | {text}\n{pad} | {caret_pad}^")?;
        }
        Ok(())
    }
}

impl std::error::Error for SourceError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_line_and_caret() {
        let text = "name: x\nhosts: web\nstepz: []\n";
        let error = SourceError::at(Path::new("play.yml"), text, 3, 1, "unknown key `stepz`");
        assert_eq!(
            error.to_string(),
            "unknown key `stepz`\n  --> play.yml:3:1\n  |\n3 | stepz: []\n  | ^"
        );
    }

    #[test]
    fn files_that_are_not_utf8_name_the_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.yml");
        std::fs::write(&path, b"a: 1\nb: \xff\n").unwrap();
        assert_eq!(
            read_text(&path).unwrap_err().to_string(),
            "it is not UTF-8 text: the byte at offset 8 (line 2) is not valid UTF-8"
        );
        std::fs::write(&path, "a: ü\n").unwrap();
        assert_eq!(read_text(&path).unwrap(), "a: ü\n");
    }

    #[test]
    fn only_regular_files_and_dev_null_are_read() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read_text(dir.path()).unwrap_err().to_string(),
            "it is a directory"
        );
        assert_eq!(
            read_text(Path::new("/dev/zero")).unwrap_err().to_string(),
            "it is not a regular file"
        );
        assert_eq!(read_text(Path::new("/dev/null")).unwrap(), "");
    }

    #[test]
    fn offsets_become_line_and_column() {
        let text = "a: 1\nbb: ü2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 5), (2, 1));
        assert_eq!(line_col(text, 11), (2, 6));
        assert_eq!(line_col(text, 999), (3, 1));
    }
}
