//! Globs as Ansible matches them: Python's `fnmatch` rules, turned into a
//! regular expression that must match the whole name.
//!
//! `*` and `?` match any character, `/` and newlines included; `[abc]`,
//! `[a-z]` and `[!abc]` are classes, where a range written backwards
//! (`[z-a]`) is dropped, and a `[` without its `]` is a plain `[`. Nothing
//! escapes a metacharacter: a backslash is a backslash.

/// The regular expression (for the `regex` crate) that matches what the
/// glob `pattern` matches.
pub(super) fn translate(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let n = p.len();
    let mut out = String::from(r"(?s)\A(?:");
    let mut i = 0;
    let mut after_star = false;
    while i < n {
        let c = p[i];
        i += 1;
        match c {
            '*' => {
                if !after_star {
                    out.push_str(".*");
                }
                after_star = true;
                continue;
            }
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < n && p[j] == '!' {
                    j += 1;
                }
                if j < n && p[j] == ']' {
                    j += 1;
                }
                while j < n && p[j] != ']' {
                    j += 1;
                }
                if j >= n {
                    out.push_str(r"\[");
                } else {
                    out.push_str(&class(&p[i..j]));
                    i = j + 1;
                }
            }
            c => out.push_str(&literal(c)),
        }
        after_star = false;
    }
    out.push_str(r")\z");
    out
}

/// A class from what is written between `[` and `]`.
fn class(stuff: &[char]) -> String {
    let chunks = range_chunks(stuff);
    let flat: Vec<char> = chunks.join(&'-');
    if flat.is_empty() {
        // Only backward ranges: nothing matches.
        return "[a&&b]".into();
    }
    if flat == ['!'] {
        return ".".into();
    }
    let negated = flat[0] == '!';
    let body: Vec<String> = chunks
        .iter()
        .enumerate()
        .map(|(k, chunk)| {
            let chars = if k == 0 && negated {
                &chunk[1..]
            } else {
                &chunk[..]
            };
            chars.iter().map(|&c| literal(c)).collect()
        })
        .collect();
    format!("[{}{}]", if negated { "^" } else { "" }, body.join("-"))
}

/// Cuts a class's text at the hyphens that make ranges, as `fnmatch` does:
/// chunk `k - 1`'s last character up to chunk `k`'s first is a range; other
/// hyphens are themselves. Backward ranges are removed.
fn range_chunks(stuff: &[char]) -> Vec<Vec<char>> {
    if !stuff.contains(&'-') {
        return vec![stuff.to_vec()];
    }
    let end = stuff.len();
    let mut chunks: Vec<Vec<char>> = Vec::new();
    let mut start = 0;
    let mut from = if stuff[0] == '!' { 2 } else { 1 };
    while let Some(hyphen) = (from..end).find(|&k| stuff[k] == '-') {
        chunks.push(stuff[start..hyphen].to_vec());
        start = hyphen + 1;
        from = hyphen + 3;
    }
    let last = &stuff[start..];
    match chunks.last_mut() {
        Some(previous) if last.is_empty() => previous.push('-'),
        _ => chunks.push(last.to_vec()),
    }
    for k in (1..chunks.len()).rev() {
        if let (Some(&low), Some(&high)) = (chunks[k - 1].last(), chunks[k].first()) {
            if low > high {
                let tail = chunks.remove(k);
                chunks[k - 1].pop();
                chunks[k - 1].extend_from_slice(&tail[1..]);
            }
        }
    }
    chunks
}

fn literal(c: char) -> String {
    regex::escape(c.encode_utf8(&mut [0; 4]))
}

#[cfg(test)]
mod tests {
    use super::translate;

    fn matches(glob: &str, name: &str) -> bool {
        regex::Regex::new(&translate(glob)).unwrap().is_match(name)
    }

    #[test]
    fn stars_and_question_marks_cross_slashes_and_newlines() {
        assert!(matches("*", "a/b"));
        assert!(matches("a?b", "a/b"));
        assert!(matches("*/*", "c/d"));
        assert!(matches("a*", "a\nb"));
        assert!(!matches("a?", "a"));
        assert!(matches("**b", "ab"));
        assert!(!matches("web", "web1"));
        assert!(!matches("web", "xweb"));
    }

    #[test]
    fn classes_follow_fnmatch() {
        assert!(matches("web[13]", "web3"));
        assert!(!matches("web[13]", "web2"));
        assert!(matches("[!w]*", "db1"));
        assert!(!matches("[!w]*", "web1"));
        assert!(matches("[a-c]x", "bx"));
        assert!(matches("[]a]", "]"));
        assert!(matches("[!]a]", "b"));
        assert!(!matches("[!]a]", "]"));
        // A backward range is dropped; one alone matches nothing.
        assert!(!matches("[z-a]*", "m1"));
        assert!(matches("[z-ab]", "b"));
        // `!` alone, after dropping a backward range, is any character.
        assert!(matches("[!z-a]", "q"));
        // Hyphens at the edges, and after a range, are themselves.
        assert!(matches("[a-]", "-"));
        assert!(matches("[-a]", "-"));
        assert!(matches("[a-c-e]", "-"));
        assert!(!matches("[a-c-e]", "d"));
        // Set operators and backslashes are plain characters.
        assert!(matches("[&~]", "~"));
        assert!(matches(r"[\]", r"\"));
        assert!(matches("[^a]", "^"));
    }

    #[test]
    fn a_bracket_without_its_end_is_a_character() {
        assert!(matches("web[1", "web[1"));
        assert!(matches("[!]*", "[!]x"));
        assert!(matches(r"a\*", r"a\bc"));
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "axb"));
    }
}
