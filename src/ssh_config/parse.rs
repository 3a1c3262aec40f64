//! Reading an OpenSSH client config into entries, as `ssh` splits it:
//! `Keyword value` or `Keyword=value`, keywords in any case, quoted
//! arguments, `#` comments, and `Include` files (globs, `~`, paths
//! relative to `~/.ssh`) read in place. Keywords herd has no use for are
//! skipped; a line herd cannot read is an error naming file:line:col.

use std::path::{Path, PathBuf};

use super::expand;
use super::SshConfigError;

/// `ssh` refuses deeper nesting of `Include` too.
const MAX_INCLUDE_DEPTH: usize = 16;

/// One file of the config, with its entries in order.
#[derive(Debug, Clone)]
pub(super) struct ConfigFile {
    pub path: PathBuf,
    /// The file's text, to show a line in an error found when resolving.
    pub text: String,
    pub entries: Vec<Entry>,
}

/// A line that matters to herd.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub line: usize,
    pub kind: EntryKind,
}

#[derive(Debug, Clone)]
pub(super) enum EntryKind {
    /// `Host` patterns, each possibly `!negated`.
    Host(Vec<String>),
    Match(Vec<Criterion>),
    /// The files an `Include` line names, read.
    Include(Vec<ConfigFile>),
    HostName(String),
    User(String),
    Port(u16),
    IdentityFile(String),
    ProxyJump(String),
    ProxyCommand(String),
    UserKnownHostsFile(Vec<String>),
}

/// One criterion of a `Match` line.
#[derive(Debug, Clone)]
pub(super) struct Criterion {
    pub negated: bool,
    pub test: Test,
    /// Where the criterion's keyword starts (1-based, in characters).
    pub column: usize,
}

#[derive(Debug, Clone)]
pub(super) enum Test {
    All,
    /// Matches only in the pass ssh makes after canonicalising the host
    /// name, which herd makes only when a `Match final` asks for it.
    Canonical,
    /// Asks for a final pass over the config and matches only in it.
    Final,
    Host(String),
    OriginalHost(String),
    User(String),
    LocalUser(String),
    /// A command for the local shell; exit status 0 is a match.
    Exec(String),
}

/// A word of a line and the column (1-based, in characters) it starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    text: String,
    column: usize,
}

/// Reads `path` and every file it includes. `home` stands for `~`.
pub(super) fn read(path: &Path, home: &Path) -> Result<ConfigFile, SshConfigError> {
    let text = crate::source::read_text(path).map_err(|e| SshConfigError {
        file: path.to_path_buf(),
        text: String::new(),
        line: 0,
        column: 0,
        message: e.to_string(),
    })?;
    parse(path, text, home, 0)
}

fn parse(
    path: &Path,
    text: String,
    home: &Path,
    depth: usize,
) -> Result<ConfigFile, SshConfigError> {
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let at = |column: usize, message: String| SshConfigError {
            file: path.to_path_buf(),
            text: text.clone(),
            line: index + 1,
            column,
            message,
        };
        let Some((keyword, rest)) = split_keyword(raw) else {
            continue;
        };
        let words =
            split_words(raw, rest).map_err(|column| at(column, "unterminated quote".into()))?;
        let Some(first) = words.first() else {
            return Err(at(
                keyword.column,
                format!("no argument after keyword `{}`", keyword.text),
            ));
        };
        let name = keyword.text.to_ascii_lowercase();
        let one = || -> Result<String, SshConfigError> {
            match words.get(1) {
                Some(extra) => Err(at(
                    extra.column,
                    format!("`{}` takes one argument", keyword.text),
                )),
                None => Ok(first.text.clone()),
            }
        };
        let kind = match name.as_str() {
            "host" => {
                if let Some(empty) = words.iter().find(|w| w.text.is_empty()) {
                    return Err(at(empty.column, "empty Host pattern".into()));
                }
                EntryKind::Host(words.iter().map(|w| w.text.clone()).collect())
            }
            "match" => EntryKind::Match(criteria(&words).map_err(|(c, m)| at(c, m))?),
            "include" => {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(at(first.column, "too many nested Include files".into()));
                }
                let mut files = Vec::new();
                for word in &words {
                    for file in include_paths(&word.text, home) {
                        let text = match crate::source::read_text(&file) {
                            Ok(text) => text,
                            // A file that vanished between glob and read is skipped, as ssh does.
                            Err(crate::source::ReadError::Io(e))
                                if e.kind() == std::io::ErrorKind::NotFound =>
                            {
                                continue
                            }
                            Err(e) => {
                                return Err(at(
                                    word.column,
                                    format!("cannot read {}: {e}", file.display()),
                                ))
                            }
                        };
                        files.push(parse(&file, text, home, depth + 1)?);
                    }
                }
                EntryKind::Include(files)
            }
            "hostname" => {
                let value = one()?;
                // ssh expands only `%%` and `%h` in HostName, and fails on any other token.
                expand::check_tokens(&value, "%h").map_err(|m| at(first.column, m))?;
                EntryKind::HostName(value)
            }
            "user" => EntryKind::User(one()?),
            "port" => {
                let value = one()?;
                match value.parse::<u16>() {
                    Ok(port) if port > 0 => EntryKind::Port(port),
                    _ => return Err(at(first.column, format!("bad port `{value}`"))),
                }
            }
            "identityfile" => {
                let value = one()?;
                expand::check(&value).map_err(|m| at(first.column, m))?;
                EntryKind::IdentityFile(value)
            }
            "userknownhostsfile" => {
                for word in &words {
                    expand::check(&word.text).map_err(|m| at(word.column, m))?;
                }
                EntryKind::UserKnownHostsFile(words.iter().map(|w| w.text.clone()).collect())
            }
            "proxyjump" => {
                let value = one()?;
                EntryKind::ProxyJump(jump(&value).map_err(|m| at(first.column, m))?)
            }
            // The command is the rest of the line, as ssh takes it.
            "proxycommand" => EntryKind::ProxyCommand(rest.trim().to_string()),
            _ => continue,
        };
        entries.push(Entry {
            line: index + 1,
            kind,
        });
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        text,
        entries,
    })
}

/// The keyword of a line and the text after it (past the one optional
/// `=`); `None` for a blank or comment line.
fn split_keyword(line: &str) -> Option<(Word, &str)> {
    let start = line.len() - line.trim_start().len();
    let body = &line[start..];
    if body.is_empty() || body.starts_with('#') {
        return None;
    }
    let end = body
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(body.len());
    let keyword = Word {
        text: body[..end].to_string(),
        column: line[..start].chars().count() + 1,
    };
    let mut rest = body[end..].trim_start();
    if let Some(after) = rest.strip_prefix('=') {
        rest = after.trim_start();
    }
    Some((keyword, rest))
}

/// Splits `rest` (a tail of `line`) into words as ssh's `argv_split` does:
/// whitespace separates, `"` and `'` group, `\` escapes a quote, a
/// backslash or a space, and a word starting with `#` ends the line. Err
/// is the column of an unterminated quote.
fn split_words(line: &str, rest: &str) -> Result<Vec<Word>, usize> {
    let offset = line.len() - rest.len();
    let column_of = |i: usize| line[..offset + i].chars().count() + 1;
    let chars: Vec<(usize, char)> = rest.char_indices().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].1.is_whitespace() {
            i += 1;
            continue;
        }
        if chars[i].1 == '#' {
            break;
        }
        let start = chars[i].0;
        let mut text = String::new();
        let mut quote: Option<(char, usize)> = None;
        while i < chars.len() {
            let c = chars[i].1;
            match (c, quote) {
                ('\\', _) => {
                    let next = chars.get(i + 1).map(|&(_, n)| n);
                    match next {
                        Some(n)
                            if n == '\''
                                || n == '"'
                                || n == '\\'
                                || (n == ' ' && quote.is_none()) =>
                        {
                            text.push(n);
                            i += 1;
                        }
                        _ => text.push(c),
                    }
                }
                (c, None) if c.is_whitespace() => break,
                ('"' | '\'', None) => quote = Some((c, chars[i].0)),
                (c, Some((q, _))) if c == q => quote = None,
                (c, _) => text.push(c),
            }
            i += 1;
        }
        if let Some((_, at)) = quote {
            return Err(column_of(at));
        }
        words.push(Word {
            text,
            column: column_of(start),
        });
    }
    Ok(words)
}

/// The criteria of a `Match` line; Err is (column, message). As in ssh,
/// a criterion and its argument are separated by blanks or by one `=`
/// (`host="a,b"`).
fn criteria(words: &[Word]) -> Result<Vec<Criterion>, (usize, String)> {
    let mut found: Vec<Criterion> = Vec::new();
    let mut words = words.iter().peekable();
    while let Some(word) = words.next() {
        let (keyword, mut argument) = match word.text.split_once('=') {
            Some((keyword, argument)) => (keyword, Some(argument.to_string())),
            None => (word.text.as_str(), None),
        };
        let (negated, name) = match keyword.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, keyword),
        };
        let name = name.to_ascii_lowercase();
        let column = word.column;
        let alone = |test: Test| Criterion {
            negated,
            test,
            column,
        };
        match name.as_str() {
            "all" => {
                let only_pass_tests = found
                    .iter()
                    .all(|c| matches!(c.test, Test::Canonical | Test::Final));
                if !only_pass_tests || words.peek().is_some() {
                    return Err((column, "`Match all` must stand alone".into()));
                }
                found.push(alone(Test::All));
                continue;
            }
            "canonical" => {
                found.push(alone(Test::Canonical));
                continue;
            }
            "final" => {
                found.push(alone(Test::Final));
                continue;
            }
            _ => {}
        }
        let make: fn(String) -> Test = match name.as_str() {
            "host" => Test::Host,
            "originalhost" => Test::OriginalHost,
            "user" => Test::User,
            "localuser" => Test::LocalUser,
            "exec" => Test::Exec,
            "localnetwork" | "tagged" => {
                return Err((
                    column,
                    format!("herd cannot evaluate `Match {name}`; use Host or Match host/user"),
                ))
            }
            other => return Err((column, format!("unknown Match criterion `{other}`"))),
        };
        if argument.as_deref() == Some("") {
            argument = None;
        }
        let argument = match argument {
            Some(argument) => argument,
            None => {
                let next = words.next().map(|w| w.text.as_str());
                // `host = a` and `host =a`: the `=` may stand apart.
                let next = match next.map(|t| t.strip_prefix('=').unwrap_or(t)) {
                    Some("") => words.next().map(|w| w.text.as_str()),
                    other => other,
                };
                match next {
                    Some(text) => text.to_string(),
                    None => return Err((column, format!("`Match {name}` needs an argument"))),
                }
            }
        };
        if name == "exec" {
            expand::check_tokens(&argument, EXEC_TOKENS).map_err(|m| (column, m))?;
        }
        found.push(Criterion {
            negated,
            test: make(argument),
            column,
        });
    }
    if found.is_empty() {
        return Err((1, "`Match` needs a criterion".into()));
    }
    Ok(found)
}

/// The `%` tokens ssh expands in a `Match exec` command (but `%k`, which
/// stands for a HostKeyAlias herd does not read).
pub(super) const EXEC_TOKENS: &str = "%CLdhlnpru";

/// A ProxyJump value as `[user@]host[:port]` hops (an `ssh://` URI
/// rewritten so), or `none`.
fn jump(value: &str) -> Result<String, String> {
    if value.eq_ignore_ascii_case("none") {
        return Ok("none".into());
    }
    let mut hops = Vec::new();
    for hop in value.split(',') {
        let plain = hop.strip_prefix("ssh://").unwrap_or(hop);
        let plain = plain.strip_suffix('/').unwrap_or(plain);
        let host = plain.rsplit_once('@').map_or(plain, |(_, h)| h);
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.parse::<u16>().is_ok_and(|p| p > 0) => h,
            Some(_) => return Err(format!("invalid ProxyJump `{value}`: bad port")),
            None => host,
        };
        if host.is_empty() || host.contains(['"', '\'', '/', ' ']) {
            return Err(format!("invalid ProxyJump `{value}`"));
        }
        hops.push(plain.to_string());
    }
    Ok(hops.join(","))
}

/// The files an `Include` word names: `~` is the home directory, a
/// relative path starts in `~/.ssh`, wildcards expand (sorted, as glob(3)).
fn include_paths(pattern: &str, home: &Path) -> Vec<PathBuf> {
    let full = if let Some(rest) = pattern.strip_prefix("~/") {
        home.join(rest)
    } else if pattern == "~" {
        home.to_path_buf()
    } else if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        home.join(".ssh").join(pattern)
    };
    let mut found = vec![PathBuf::from("/")];
    for part in full.components().skip(1) {
        let part = part.as_os_str().to_string_lossy();
        let wild = part.contains(['*', '?']);
        found = found
            .into_iter()
            .flat_map(|dir| {
                if !wild {
                    return vec![dir.join(&*part)];
                }
                let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        // As glob(3): a leading dot is matched only by a leading dot.
                        (!name.starts_with('.') || part.starts_with('.'))
                            && super::pattern::wildcard(&name, &part)
                    })
                    .map(|e| dir.join(e.file_name()))
                    .collect();
                names.sort();
                names
            })
            .collect();
    }
    found.into_iter().filter(|p| p.is_file()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let (_, rest) = split_keyword(line).unwrap();
        split_words(line, rest)
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn keywords_values_quotes_and_comments() {
        assert_eq!(words("  Port=2201 # comment"), ["2201"]);
        assert_eq!(words("User = alice"), ["alice"]);
        assert_eq!(words("Host \"web 1\" 'b' c\\ d"), ["web 1", "b", "c d"]);
        assert_eq!(words("IdentityFile a#b"), ["a#b"]);
        assert!(split_keyword("# Host x").is_none());
        assert!(split_keyword("   ").is_none());
        let line = "Host \"open";
        let (_, rest) = split_keyword(line).unwrap();
        assert_eq!(split_words(line, rest), Err(6));
    }

    #[test]
    fn proxy_jump_forms() {
        assert_eq!(jump("ssh://ops@b:2200").unwrap(), "ops@b:2200");
        assert_eq!(jump("x@j1:2201,j2").unwrap(), "x@j1:2201,j2");
        assert_eq!(jump("NONE").unwrap(), "none");
        assert!(jump("\"j1\"").is_err());
        assert!(jump("j1:http").is_err());
    }
}
