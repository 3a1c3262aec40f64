//! Ansible host patterns: what `--limit` and a playbook's `hosts:` select,
//! and in which order.
//!
//! A pattern is terms cut as [`split`] says; a term is a host or group name,
//! `all`, a glob (`web*`, `db-?`, `web[ab]`, matched as Python's `fnmatch`
//! does) or a regular expression after `~` (matched at the start of a name),
//! optionally followed by Ansible's subscript (`web[0]`, `web[-1]`,
//! `web[1:3]`, `web[2:]`), and prefixed by `&` (intersection) or `!`
//! (exclusion). `--limit` also takes `@file`: a file of terms, one a line.
//!
//! The hosts come back in Ansible's order, which is the rollout's order: the
//! union terms first, in the order written, each adding its hosts not yet
//! selected; then the `&` terms, then the `!` terms, keeping or dropping
//! hosts; a pattern of only `&`/`!` terms starts from `all`. A name or glob
//! gives the hosts of each group it matches (a group's own hosts first,
//! then its children's, see [`Inventory::group_hosts`]) and, when it matches
//! no group or is a glob, the hosts it matches by name. A name that is both
//! a host and a group is the host alone as a union term, the group after
//! `&` or `!`. A subscript counts in that order.
//!
//! Unlike Ansible, a term that selects nothing is an error rather than a
//! warning: a typo in `!web-canary` must not quietly deploy to the canary.
//! So is a subscript range that selects nothing, and an empty `@file`.

mod glob;
mod split;

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::{Host, Inventory};

/// A mistake in a host pattern, at a byte offset of the pattern string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PatternError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Intersection,
    Exclusion,
}

/// One term: its text without the operator, and where that text starts.
#[derive(Debug)]
struct Term {
    op: Op,
    text: String,
    offset: usize,
    /// For a term read from a `--limit @file`: the file and the line.
    file: Option<(String, usize)>,
}

/// The hosts `pattern` selects, in Ansible's order.
pub fn select<'i>(inventory: &'i Inventory, pattern: &str) -> Result<Vec<&'i Host>, PatternError> {
    evaluate(inventory, &split::split(pattern)?)
}

/// As [`select`], where a term `@path` stands for the terms in that file,
/// one a line, as `--limit` reads them.
pub fn select_limit<'i>(
    inventory: &'i Inventory,
    limit: &str,
) -> Result<Vec<&'i Host>, PatternError> {
    let mut terms = Vec::new();
    for term in split::split(limit)? {
        match term.text.strip_prefix('@').filter(|_| term.op == Op::Union) {
            Some(path) => terms.extend(read_limit_file(path, term.offset)?),
            None => terms.push(term),
        }
    }
    evaluate(inventory, &terms)
}

/// The terms of a limit file: each line, stripped, is one term (commas and
/// colons in it do not cut it); blank lines are skipped.
fn read_limit_file(path: &str, offset: usize) -> Result<Vec<Term>, PatternError> {
    let text = crate::source::read_text(std::path::Path::new(path))
        .map_err(|e| error(offset, format!("cannot read limit file `{path}`: {e}")))?;
    let mut terms = Vec::new();
    for (number, line) in text.split('\n').enumerate() {
        let (_, line) = split::trimmed(0, line);
        if line.is_empty() {
            continue;
        }
        let mut term = split::term(offset, line).map_err(|e| {
            error(
                offset,
                format!("{path}, line {}: {}", number + 1, e.message),
            )
        })?;
        term.offset = offset;
        term.file = Some((path.to_string(), number + 1));
        terms.push(term);
    }
    if terms.is_empty() {
        return Err(error(
            offset,
            format!("limit file `{path}` names no host or group"),
        ));
    }
    Ok(terms)
}

/// Applies the terms: unions in the order written, then intersections,
/// then exclusions.
fn evaluate<'i>(inventory: &'i Inventory, terms: &[Term]) -> Result<Vec<&'i Host>, PatternError> {
    let by_name: HashMap<&str, usize> = inventory
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.as_str(), i))
        .collect();
    // Every term is resolved first, in the order written, so the first
    // mistake written is the one reported.
    let mut resolved = Vec::with_capacity(terms.len() + 1);
    for term in terms {
        let hosts = matching(inventory, &by_name, term).map_err(|mut e| {
            if let Some((file, line)) = &term.file {
                e.message = format!("{file}, line {line}: {}", e.message);
            }
            e
        })?;
        resolved.push((term.op, hosts));
    }
    if !resolved.iter().any(|(op, _)| *op == Op::Union) {
        let all = Term {
            op: Op::Union,
            text: "all".into(),
            offset: 0,
            file: None,
        };
        resolved.insert(0, (Op::Union, matching(inventory, &by_name, &all)?));
    }
    let mut selected: Vec<usize> = Vec::new();
    let mut seen = vec![false; inventory.hosts.len()];
    for op in [Op::Union, Op::Intersection, Op::Exclusion] {
        for (_, hosts) in resolved.iter().filter(|(o, _)| *o == op) {
            if op == Op::Union {
                for &host in hosts {
                    if !std::mem::replace(&mut seen[host], true) {
                        selected.push(host);
                    }
                }
                continue;
            }
            let mut in_term = vec![false; inventory.hosts.len()];
            for &host in hosts {
                in_term[host] = true;
            }
            let keep = op == Op::Intersection;
            selected.retain(|&host| in_term[host] == keep);
        }
    }
    Ok(selected.into_iter().map(|i| &inventory.hosts[i]).collect())
}

/// The hosts one term gives, in order, a host perhaps more than once (a
/// subscript counts those repeats, as Ansible's does).
fn matching(
    inventory: &Inventory,
    by_name: &HashMap<&str, usize>,
    term: &Term,
) -> Result<Vec<usize>, PatternError> {
    if term.op == Op::Union {
        if let Some(&host) = by_name.get(term.text.as_str()) {
            return Ok(vec![host]);
        }
    }
    let (name, subscript) = split_subscript(&term.text);
    let matcher = Matcher::new(name).map_err(|message| error(term.offset, message))?;
    let mut hosts = Vec::new();
    let mut any_group = false;
    for group in inventory.groups.iter().filter(|g| matcher.fits(&g.name)) {
        any_group = true;
        hosts.extend(inventory.group_hosts(&group.name));
    }
    if !any_group || matcher.regex || name.contains(['.', '?', '*', '[']) {
        hosts.extend(
            inventory
                .declared
                .iter()
                .copied()
                .filter(|&i| matcher.fits(&inventory.hosts[i].name)),
        );
    }
    if hosts.is_empty() && !any_group {
        let mut message = format!("no host or group matches `{name}`");
        let plain = !matcher.regex && !name.contains(['?', '*', '[']);
        if let Some(close) = plain.then(|| suggestion(inventory, name)).flatten() {
            message += &format!("; did you mean `{close}`?");
        } else if name.rfind('[') > name.rfind(']') {
            message += " (its `[` is not closed)";
        }
        return Err(error(term.offset, message));
    }
    match subscript {
        Some((at, subscript)) => apply_subscript(hosts, subscript)
            .map_err(|message| error(term.offset + at, format!("in `{}`: {message}", term.text))),
        None => Ok(hosts),
    }
}

/// A glob, or a regular expression for a `~` term.
struct Matcher {
    pattern: Regex,
    regex: bool,
}

impl Matcher {
    fn new(name: &str) -> Result<Matcher, String> {
        match name.strip_prefix('~') {
            Some(expression) => {
                let pattern = Regex::new(expression).map_err(|e| {
                    let why = e.to_string();
                    let why = why
                        .lines()
                        .find_map(|l| l.strip_prefix("error: "))
                        .unwrap_or("too large")
                        .to_string();
                    format!("invalid regular expression `{expression}`: {why}")
                })?;
                Ok(Matcher {
                    pattern,
                    regex: true,
                })
            }
            None => {
                let pattern = Regex::new(&glob::translate(name))
                    .map_err(|_| format!("invalid host pattern `{name}`"))?;
                Ok(Matcher {
                    pattern,
                    regex: false,
                })
            }
        }
    }

    /// Whether `name` matches: a glob the whole name, a regular expression
    /// from the name's start (Python's `re.match`).
    fn fits(&self, name: &str) -> bool {
        if self.regex {
            self.pattern.find(name).is_some_and(|m| m.start() == 0)
        } else {
            self.pattern.is_match(name)
        }
    }
}

/// Ansible's subscript: `[n]` (negative counts from the end), `[a:b]` or
/// `[a-b]` (both ends included; `[a:0]` is `[a]`), `[a:]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subscript {
    Index(i128),
    Slice(i128, Option<i128>),
}

static SUBSCRIPTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$").expect("valid regex")
});

/// Splits `web[1:3]` into `web` and its subscript, with the offset of `[`.
/// Brackets that are not a subscript (`web[ab]`) stay part of the glob, and
/// a regular expression has none.
fn split_subscript(text: &str) -> (&str, Option<(usize, Subscript)>) {
    if text.starts_with('~') {
        return (text, None);
    }
    let Some(parts) = SUBSCRIPTED.captures(text) else {
        return (text, None);
    };
    let name = parts.get(1).map_or("", |m| m.as_str());
    let number = |i: usize| {
        parts.get(i).map(|m| {
            let digits = m.as_str();
            digits
                .parse::<i128>()
                .unwrap_or(if digits.starts_with('-') {
                    i128::MIN
                } else {
                    i128::MAX
                })
        })
    };
    let subscript = match (number(2), number(3)) {
        (Some(index), _) => Subscript::Index(index),
        (None, Some(start)) => {
            let written = parts.get(5).is_some_and(|m| !m.as_str().is_empty());
            Subscript::Slice(start, number(5).filter(|_| written))
        }
        (None, None) => return (text, None),
    };
    (name, Some((name.len(), subscript)))
}

/// Keeps the subscripted hosts among those a term gives, counted in order.
fn apply_subscript(hosts: Vec<usize>, subscript: Subscript) -> Result<Vec<usize>, String> {
    if hosts.is_empty() {
        return Ok(hosts);
    }
    let count = hosts.len() as i128;
    let matches = if count == 1 {
        "it matches 1 host".to_string()
    } else {
        format!("it matches {count} hosts")
    };
    let pick = |n: i128| {
        let index = if n < 0 { count.saturating_add(n) } else { n };
        if (0..count).contains(&index) {
            Ok(vec![hosts[index as usize]])
        } else {
            Err(format!("index {n} is out of range: {matches}"))
        }
    };
    match subscript {
        Subscript::Index(n) | Subscript::Slice(n, Some(0)) => pick(n),
        Subscript::Slice(start, end) => {
            let end = end.map_or(count, |end| end.saturating_add(1).min(count));
            if start >= end {
                return Err(format!("the range selects no host: {matches}"));
            }
            Ok(hosts[start as usize..end as usize].to_vec())
        }
    }
}

/// The group or host name closest to `name`, if within two edits.
fn suggestion<'i>(inventory: &'i Inventory, name: &str) -> Option<&'i str> {
    let names = inventory
        .groups
        .iter()
        .map(|g| &g.name)
        .chain(inventory.hosts.iter().map(|h| &h.name));
    let mut best: Option<(usize, &str)> = None;
    let length = name.chars().count();
    for candidate in names {
        // Cheap bound first: the distance is at least the difference in length.
        if candidate.chars().count().abs_diff(length) > 2 {
            continue;
        }
        let distance = edit_distance(name, candidate);
        if distance <= 2 && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Levenshtein distance, over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

fn error(offset: usize, message: impl Into<String>) -> PatternError {
    PatternError {
        offset,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests;
