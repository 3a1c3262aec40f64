//! OpenSSH's host patterns: `*` and `?` wildcards, and comma lists where a
//! `!pattern` that matches vetoes the whole list. Shared by ssh_config's
//! `Host`/`Match` lines and by known_hosts.

/// Whether `text` matches the wildcard `pattern` (`*` any run, `?` one character).
pub fn wildcard(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    let (mut t, mut p) = (0, 0);
    // Where the last `*` was, and how much text it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// OpenSSH's `match_pattern_list`: `Some(true)` when a positive pattern of
/// the comma list matches and no negated one does, `Some(false)` when a
/// negated one matches (a veto), `None` when nothing matches.
pub fn list(text: &str, patterns: &str, lowercase: bool) -> Option<bool> {
    let mut positive = false;
    for pattern in patterns.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let pattern = if lowercase {
            pattern.to_lowercase()
        } else {
            pattern.to_string()
        };
        if wildcard(text, &pattern) {
            if negated {
                return Some(false);
            }
            positive = true;
        }
    }
    positive.then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("web1.example.com", "web*"));
        assert!(wildcard("web1", "web?"));
        assert!(!wildcard("web12", "web?"));
        assert!(wildcard("a", "*"));
        assert!(wildcard("", "*"));
        assert!(wildcard("abcbd", "a*b?"));
        assert!(wildcard("10.0.0.5", "10.0.*.?"));
        assert!(!wildcard("10.0.1", "10.0.*.?"));
        assert!(wildcard("[127.0.0.2]:2201", "[127.0.0.?]:*"));
    }

    #[test]
    fn a_negated_pattern_vetoes_the_list() {
        assert_eq!(list("web1", "web*,!web2", false), Some(true));
        assert_eq!(list("web2", "web*,!web2", false), Some(false));
        assert_eq!(list("db1", "web*,!web2", false), None);
        assert_eq!(list("db1", "!web2", false), None);
        assert_eq!(list("web1", "WEB*", true), Some(true));
    }
}
