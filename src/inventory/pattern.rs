//! Ansible host patterns: what `--limit` and a playbook's `hosts:` select.
//!
//! A pattern is terms joined by `,` or `:`; a term is a host or group name,
//! `all` or `*`, or a glob (`web*`, `db-?`, `web[ab]`), optionally followed by
//! Ansible's subscript (`web[0]`, `web[-1]`, `web[1:3]`, `web[2:]`), and
//! prefixed by `&` (intersection) or `!` (exclusion). As in Ansible, unions
//! apply first, then intersections, then exclusions, whatever the order
//! written; a pattern of only `&`/`!` terms starts from `all`. The hosts come
//! back in inventory order.
//!
//! Unlike Ansible, a term that names nothing is an error rather than a
//! warning: a typo in `!web-canary` must not quietly deploy to the canary.

use std::fmt;

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
struct Term<'p> {
    op: Op,
    text: &'p str,
    offset: usize,
}

pub fn select<'i>(inventory: &'i Inventory, pattern: &str) -> Result<Vec<&'i Host>, PatternError> {
    let terms = split(pattern)?;
    let has_union = terms.iter().any(|t| t.op == Op::Union);
    let mut selected = vec![!has_union; inventory.hosts.len()];
    for op in [Op::Union, Op::Intersection, Op::Exclusion] {
        for term in terms.iter().filter(|t| t.op == op) {
            let matched = matching(inventory, term)?;
            for (selected, matched) in selected.iter_mut().zip(matched) {
                *selected = match op {
                    Op::Union => *selected || matched,
                    Op::Intersection => *selected && matched,
                    Op::Exclusion => *selected && !matched,
                };
            }
        }
    }
    Ok(inventory
        .hosts
        .iter()
        .zip(selected)
        .filter_map(|(host, selected)| selected.then_some(host))
        .collect())
}

/// Cuts the pattern at `,` and `:` outside brackets.
fn split(pattern: &str) -> Result<Vec<Term<'_>>, PatternError> {
    if pattern.trim().is_empty() {
        return Err(error(0, "the host pattern is empty"));
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut open: Option<usize> = None;
    for (i, c) in pattern.char_indices() {
        match c {
            '[' if open.is_none() => open = Some(i),
            ']' => open = None,
            ',' | ':' if open.is_none() => {
                terms.push(term(pattern, start, i)?);
                start = i + 1;
            }
            _ => {}
        }
    }
    if let Some(at) = open {
        return Err(error(at, "unclosed `[` in host pattern"));
    }
    terms.push(term(pattern, start, pattern.len())?);
    Ok(terms)
}

fn term(pattern: &str, start: usize, end: usize) -> Result<Term<'_>, PatternError> {
    let skip_space =
        |at: usize| at + (pattern[at..end].len() - pattern[at..end].trim_start().len());
    let mut offset = skip_space(start);
    let op = match pattern[offset..end].chars().next() {
        Some('&') => Op::Intersection,
        Some('!') => Op::Exclusion,
        _ => Op::Union,
    };
    if op != Op::Union {
        offset = skip_space(offset + 1);
    }
    let text = pattern[offset..end].trim_end();
    if text.is_empty() {
        let message = match op {
            Op::Union => "empty term in host pattern",
            Op::Intersection => "`&` must be followed by a host or group",
            Op::Exclusion => "`!` must be followed by a host or group",
        };
        return Err(error(offset, message));
    }
    Ok(Term { op, text, offset })
}

/// Which hosts (by inventory position) one term matches.
fn matching(inventory: &Inventory, term: &Term<'_>) -> Result<Vec<bool>, PatternError> {
    let (name, subscript) = split_subscript(term.text);
    if name.starts_with('~') {
        return Err(error(
            term.offset,
            "regular-expression patterns (`~`) are not supported; use a glob such as `web*`",
        ));
    }
    let hosts = &inventory.hosts;
    let mut matched = if name == "all" || name == "*" {
        vec![true; hosts.len()]
    } else {
        let glob = name.contains(['*', '?', '[']);
        let fits = |candidate: &str| {
            if glob {
                glob_match::glob_match(name, candidate)
            } else {
                candidate == name
            }
        };
        let groups: Vec<&str> = inventory
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .filter(|g| fits(g))
            .collect();
        let matched: Vec<bool> = hosts
            .iter()
            .map(|host| {
                fits(&host.name) || host.groups.iter().any(|g| groups.contains(&g.as_str()))
            })
            .collect();
        if groups.is_empty() && !matched.contains(&true) {
            let mut message = format!("no host or group matches `{name}`");
            if let Some(close) = (!glob).then(|| suggestion(inventory, name)).flatten() {
                message += &format!("; did you mean `{close}`?");
            }
            return Err(error(term.offset, message));
        }
        matched
    };
    if let Some((at, subscript)) = subscript {
        apply_subscript(&mut matched, subscript)
            .map_err(|message| error(term.offset + at, format!("in `{}`: {message}", term.text)))?;
    }
    Ok(matched)
}

/// Ansible's subscript: `[n]` (negative counts from the end), `[a:b]` or
/// `[a-b]` (both ends included), `[a:]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subscript {
    Index(i64),
    Slice(usize, Option<usize>),
}

/// Splits `web[1:3]` into `web` and its subscript, with the offset of `[`.
/// Brackets that are not a subscript (`web[ab]`) stay part of the glob.
fn split_subscript(text: &str) -> (&str, Option<(usize, Subscript)>) {
    let Some(inner) = text.strip_suffix(']') else {
        return (text, None);
    };
    let Some(open) = inner.rfind('[').filter(|&open| open > 0) else {
        return (text, None);
    };
    let inside = &inner[open + 1..];
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let subscript = if let Some(range) = inside.find([':', '-']).filter(|&at| at > 0) {
        let (start, end) = (&inside[..range], &inside[range + 1..]);
        match (number(start), end.is_empty(), number(end)) {
            (Some(start), true, _) => Some(Subscript::Slice(start, None)),
            (Some(start), false, Some(end)) => Some(Subscript::Slice(start, Some(end))),
            _ => None,
        }
    } else {
        let digits = inside.strip_prefix('-').unwrap_or(inside);
        number(digits)
            .and_then(|n: usize| i64::try_from(n).ok())
            .map(|n| Subscript::Index(if inside.starts_with('-') { -n } else { n }))
    };
    match subscript {
        Some(subscript) => (&text[..open], Some((open, subscript))),
        None => (text, None),
    }
}

/// Keeps only the subscripted hosts among those `matched`, counted in
/// inventory order.
fn apply_subscript(matched: &mut [bool], subscript: Subscript) -> Result<(), String> {
    let positions: Vec<usize> = (0..matched.len()).filter(|&i| matched[i]).collect();
    let count = positions.len();
    let keep = match subscript {
        Subscript::Index(n) => {
            let index = if n < 0 { count as i64 + n } else { n };
            if index < 0 || index >= count as i64 {
                return Err(format!(
                    "index {n} is out of range: it matches {count} hosts"
                ));
            }
            index as usize..index as usize + 1
        }
        Subscript::Slice(start, end) => {
            let end = end.map_or(count, |end| end.saturating_add(1).min(count));
            start.min(end)..end
        }
    };
    matched.fill(false);
    for &position in &positions[keep] {
        matched[position] = true;
    }
    Ok(())
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
mod tests {
    use std::path::Path;

    use super::*;

    const FLEET: &str = "\
all:
  hosts:
    bastion:
  children:
    web:
      hosts:
        web[1:4].example.com:
    canary:
      hosts:
        web4.example.com:
    db:
      hosts:
        db[1:2].example.com:
    prod:
      children:
        web:
        db:
";

    fn inventory() -> Inventory {
        Inventory::parse(Path::new("inventory.yml"), FLEET).unwrap()
    }

    fn names(pattern: &str) -> Vec<String> {
        let inventory = inventory();
        let hosts = inventory.select(pattern).unwrap();
        hosts
            .into_iter()
            .map(|h| h.name.replace(".example.com", ""))
            .collect()
    }

    fn error(pattern: &str) -> PatternError {
        inventory().select(pattern).unwrap_err()
    }

    #[test]
    fn names_groups_and_all() {
        assert_eq!(names("web2.example.com"), ["web2"]);
        assert_eq!(names("db"), ["db1", "db2"]);
        assert_eq!(
            names("prod"),
            ["web1", "web2", "web3", "web4", "db1", "db2"]
        );
        assert_eq!(names("all").len(), 7);
        assert_eq!(names("*").len(), 7);
        assert_eq!(names("ungrouped"), ["bastion"]);
    }

    #[test]
    fn globs_match_hosts_and_groups() {
        assert_eq!(names("*.example.com").len(), 6);
        assert_eq!(names("web?.example.com"), ["web1", "web2", "web3", "web4"]);
        assert_eq!(names("d*"), ["db1", "db2"]);
        assert_eq!(names("web[13].example.com"), ["web1", "web3"]);
        assert_eq!(names("bas*"), ["bastion"]);
    }

    #[test]
    fn unions_with_comma_or_colon_come_back_in_inventory_order() {
        assert_eq!(names("db,bastion"), ["bastion", "db1", "db2"]);
        assert_eq!(names("db:web1.example.com"), ["web1", "db1", "db2"]);
        assert_eq!(names(" db , db1.example.com "), ["db1", "db2"]);
    }

    #[test]
    fn intersections_and_exclusions() {
        assert_eq!(names("prod:&web"), ["web1", "web2", "web3", "web4"]);
        assert_eq!(names("web:!canary"), ["web1", "web2", "web3"]);
        assert_eq!(names("all:!prod"), ["bastion"]);
        assert_eq!(names("web:&canary"), ["web4"]);
    }

    #[test]
    fn unions_then_intersections_then_exclusions_whatever_the_order() {
        assert_eq!(names("!canary:web"), ["web1", "web2", "web3"]);
        assert_eq!(names("&db:all:!db2.example.com"), ["db1"]);
        assert_eq!(names("web:!canary:canary"), ["web1", "web2", "web3"]);
    }

    #[test]
    fn only_intersections_and_exclusions_start_from_all() {
        assert_eq!(names("!prod"), ["bastion"]);
        assert_eq!(names("&db"), ["db1", "db2"]);
    }

    #[test]
    fn subscripts_pick_among_a_terms_hosts() {
        assert_eq!(names("web[0]"), ["web1"]);
        assert_eq!(names("web[-1]"), ["web4"]);
        assert_eq!(names("web[1:2]"), ["web2", "web3"]);
        assert_eq!(names("web[1-2]"), ["web2", "web3"]);
        assert_eq!(names("web[2:]"), ["web3", "web4"]);
        assert_eq!(names("prod[4:9],bastion"), ["bastion", "db1", "db2"]);
        let e = error("db,web[7]");
        assert_eq!(
            (e.offset, e.message.as_str()),
            (
                6,
                "in `web[7]`: index 7 is out of range: it matches 4 hosts"
            )
        );
    }

    #[test]
    fn unknown_terms_are_errors_at_their_offset() {
        let e = error("web,webz:!canary");
        assert_eq!(e.offset, 4);
        assert_eq!(
            e.to_string(),
            "no host or group matches `webz`; did you mean `web`?"
        );

        let e = error("web:!canray");
        assert_eq!(
            (e.offset, e.message.as_str()),
            (
                5,
                "no host or group matches `canray`; did you mean `canary`?"
            )
        );

        let e = error("web:&zzz*");
        assert_eq!(
            (e.offset, e.message.as_str()),
            (5, "no host or group matches `zzz*`")
        );

        let e = error("frontend");
        assert_eq!(
            (e.offset, e.message.as_str()),
            (0, "no host or group matches `frontend`")
        );
    }

    #[test]
    fn malformed_patterns_are_errors_at_their_offset() {
        assert_eq!(error("").message, "the host pattern is empty");
        assert_eq!(error("   ").offset, 0);
        let e = error("web,,db");
        assert_eq!(
            (e.offset, e.message.as_str()),
            (4, "empty term in host pattern")
        );
        let e = error("web:& ");
        assert_eq!(
            (e.offset, e.message.as_str()),
            (6, "`&` must be followed by a host or group")
        );
        let e = error("web:!");
        assert_eq!(
            (e.offset, e.message.as_str()),
            (5, "`!` must be followed by a host or group")
        );
        let e = error("db,web[1:2");
        assert_eq!(
            (e.offset, e.message.as_str()),
            (6, "unclosed `[` in host pattern")
        );
        assert_eq!(error("db:~web.*").offset, 3);
    }

    #[test]
    fn edit_distance_counts_characters() {
        assert_eq!(edit_distance("web", "webz"), 1);
        assert_eq!(edit_distance("canary", "canray"), 2);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("ünï", "uni"), 2);
    }
}
