//! Host ranges in host names, as Ansible writes them: `web[01:12].example.com`
//! (zero padding kept when the start is written with a leading zero),
//! `db-[a:f]` (letters run a..z then A..Z, so `[x:B]` crosses the case), a
//! stride in `[1:10:2]`, and several ranges in one name.

/// The most hosts one name may expand to; a typo such as `[1:100000]` should
/// be an error, not a stalled run.
pub const MAX_EXPANSION: usize = 10_000;

/// A host name whose range cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError {
    /// Byte offset in the host name of the faulty `[` (or `]`).
    pub offset: usize,
    pub message: String,
}

/// Expands every range in `name`; a name without ranges is returned as is.
pub fn expand(name: &str) -> Result<Vec<String>, RangeError> {
    // Each piece is a set of alternatives: one for literal text, many for a range.
    let mut pieces: Vec<Vec<String>> = Vec::new();
    let mut literal_start = 0;
    let mut at = 0;
    while let Some(found) = name[at..].find(['[', ']']) {
        let open = at + found;
        let fail = |message: String| RangeError {
            offset: open,
            message,
        };
        if name.as_bytes()[open] == b']' {
            return Err(fail(format!("unmatched `]` in host name `{name}`")));
        }
        let Some(close) = name[open..].find(']').map(|i| open + i) else {
            return Err(fail(format!("unclosed `[` in host name `{name}`")));
        };
        let inner = &name[open + 1..close];
        let values = range_values(inner)
            .map_err(|detail| fail(format!("bad host range `[{inner}]` in `{name}`: {detail}")))?;
        pieces.push(vec![name[literal_start..open].to_string()]);
        pieces.push(values);
        at = close + 1;
        literal_start = at;
    }
    pieces.push(vec![name[literal_start..].to_string()]);

    let total = pieces
        .iter()
        .try_fold(1usize, |total, piece| total.checked_mul(piece.len()))
        .filter(|&total| total <= MAX_EXPANSION);
    if total.is_none() {
        let offset = name.find('[').unwrap_or(0);
        return Err(RangeError {
            offset,
            message: format!("host name `{name}` expands to more than {MAX_EXPANSION} hosts"),
        });
    }

    let mut names = vec![String::new()];
    for piece in &pieces {
        names = names
            .iter()
            .flat_map(|prefix| piece.iter().map(move |value| format!("{prefix}{value}")))
            .collect();
    }
    Ok(names)
}

/// The values of one range, given what is between the brackets.
fn range_values(inner: &str) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = inner.split(':').collect();
    let (start, end, step) = match parts[..] {
        [start, end] => (start, end, None),
        [start, end, step] => (start, end, Some(step)),
        _ => return Err("expected `[start:end]` or `[start:end:step]`".to_string()),
    };
    // As in Ansible, an empty start means 0; an empty end is a mistake.
    let start = if start.is_empty() { "0" } else { start };
    if end.is_empty() {
        return Err("the range has no end".to_string());
    }
    let step = match step {
        None => 1,
        Some(step) => match step.parse::<usize>() {
            Ok(step) if step > 0 => step,
            _ => {
                return Err(format!(
                    "the step must be a positive whole number, not `{step}`"
                ))
            }
        },
    };

    if let (Some(first), Some(last)) = (letter_index(start), letter_index(end)) {
        if first > last {
            return Err(format!("start `{start}` is after end `{end}`"));
        }
        return Ok(LETTERS[first..=last]
            .chars()
            .step_by(step)
            .map(|c| c.to_string())
            .collect());
    }

    let is_number = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !is_number(start) || !is_number(end) {
        return Err(format!(
            "`{start}` and `{end}` must both be numbers or both single letters"
        ));
    }
    let width = if start.len() > 1 && start.starts_with('0') {
        if start.len() != end.len() {
            return Err(format!(
                "zero-padded start `{start}` and end `{end}` must have the same width"
            ));
        }
        start.len()
    } else {
        0
    };
    let parse = |s: &str| s.parse::<u64>().map_err(|_| format!("`{s}` is too large"));
    let (first, last) = (parse(start)?, parse(end)?);
    if first > last {
        return Err(format!("start `{start}` is after end `{end}`"));
    }
    let count = (last - first) / step as u64 + 1;
    if count > MAX_EXPANSION as u64 {
        return Err(format!("it expands to more than {MAX_EXPANSION} hosts"));
    }
    Ok((first..=last)
        .step_by(step)
        .map(|n| format!("{n:0width$}"))
        .collect())
}

/// Letters in Ansible's range order: lower case first, so `[x:B]` is x, y,
/// z, A, B and `[B:x]` is backwards.
const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Where a single ASCII letter stands in [`LETTERS`].
fn letter_index(s: &str) -> Option<usize> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => LETTERS.find(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(name: &str) -> Vec<String> {
        expand(name).unwrap()
    }

    fn error(name: &str) -> RangeError {
        expand(name).unwrap_err()
    }

    #[test]
    fn plain_names_are_kept() {
        assert_eq!(names("db1.example.com"), ["db1.example.com"]);
    }

    #[test]
    fn numeric_ranges_keep_zero_padding() {
        let hosts = names("web[01:12].example.com");
        assert_eq!(hosts.len(), 12);
        assert_eq!(hosts[0], "web01.example.com");
        assert_eq!(hosts[11], "web12.example.com");
        assert_eq!(names("web[8:11]"), ["web8", "web9", "web10", "web11"]);
        assert_eq!(names("n[:2]"), ["n0", "n1", "n2"]);
    }

    #[test]
    fn letter_ranges() {
        assert_eq!(names("db-[a:d]"), ["db-a", "db-b", "db-c", "db-d"]);
        assert_eq!(names("db-[X:Z]"), ["db-X", "db-Y", "db-Z"]);
    }

    #[test]
    fn letter_ranges_run_from_lower_to_upper_case() {
        assert_eq!(names("h[x:B]"), ["hx", "hy", "hz", "hA", "hB"]);
        assert_eq!(names("h[a:C]").len(), 29);
        assert_eq!(names("h[A:C]"), ["hA", "hB", "hC"]);
        assert_eq!(names("h[y:D:2]"), ["hy", "hA", "hC"]);
        assert_eq!(
            error("h[B:x]").message,
            "bad host range `[B:x]` in `h[B:x]`: start `B` is after end `x`"
        );
    }

    #[test]
    fn strides() {
        assert_eq!(names("h[1:10:3]"), ["h1", "h4", "h7", "h10"]);
        assert_eq!(names("h[001:010:4]"), ["h001", "h005", "h009"]);
        assert_eq!(names("h[a:e:2]"), ["ha", "hc", "he"]);
    }

    #[test]
    fn several_ranges_expand_first_range_outermost() {
        assert_eq!(
            names("r[1:2]-[a:b].dc"),
            ["r1-a.dc", "r1-b.dc", "r2-a.dc", "r2-b.dc"]
        );
    }

    #[test]
    fn bad_ranges_point_at_their_bracket() {
        let e = error("web[10:01]");
        assert_eq!(e.offset, 3);
        assert_eq!(
            e.message,
            "bad host range `[10:01]` in `web[10:01]`: start `10` is after end `01`"
        );

        let e = error("a[1:2]b[1:x]");
        assert_eq!(e.offset, 7);
        assert_eq!(
            e.message,
            "bad host range `[1:x]` in `a[1:2]b[1:x]`: `1` and `x` must both be numbers or both single letters"
        );

        assert_eq!(
            error("web[1:3").message,
            "unclosed `[` in host name `web[1:3`"
        );
        assert_eq!(error("web1]").offset, 4);
        assert!(error("w[1]")
            .message
            .ends_with("expected `[start:end]` or `[start:end:step]`"));
        assert!(error("w[1:]").message.ends_with("the range has no end"));
        assert!(error("w[1:5:0]").message.ends_with("not `0`"));
        assert!(error("w[01:100]")
            .message
            .ends_with("must have the same width"));
        assert!(error("w[1:99999999999999999999999]")
            .message
            .ends_with("is too large"));
        assert!(error("w[1:100000]")
            .message
            .contains("more than 10000 hosts"));
        assert!(error("w[1:200][1:200]")
            .message
            .contains("more than 10000 hosts"));
    }
}
