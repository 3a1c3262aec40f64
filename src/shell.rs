//! The shell herd speaks to hosts: quoting a word, running a script as
//! another account through `sudo`, quoting the tail of what a command
//! said, and keeping a name to one line. A leaf: it uses nothing else in herd, so every layer (plan, engine,
//! reload, lab) may use it.

/// Quotes `text` for a POSIX shell, leaving plainly safe words as they are.
pub fn quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b));
    if safe {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// `script` as it runs: as is, or under `become_` through `sudo -n` as
/// `become_user` (root when not given). `-n`: a rule that asks for a
/// password fails at once with sudo's message instead of hanging.
pub fn wrap(script: &str, become_: bool, become_user: Option<&str>) -> String {
    if become_ {
        let user = become_user.unwrap_or("root");
        format!(
            "sudo -n -H -u {} -- /bin/sh -c {}",
            quote(user),
            quote(script)
        )
    } else {
        script.to_string()
    }
}

/// `text` as one line of a log: each control character (a newline, a
/// carriage return, an escape) a space, and no space at either end, so a
/// name cannot end herd's line early and start one herd did not write.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_leaves_no_control_character() {
        assert_eq!(
            one_line("deploy\nhost02: reload: ok\r\x1b[2K\n"),
            "deploy host02: reload: ok  [2K"
        );
        assert_eq!(one_line("plain name"), "plain name");
    }

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("/srv/app-1.2"), "/srv/app-1.2");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's $(x)"), r"'it'\''s $(x)'");
    }

    #[test]
    fn wraps_in_sudo_only_under_become() {
        assert_eq!(wrap("id", false, Some("app")), "id");
        assert_eq!(
            wrap("id -u", true, None),
            "sudo -n -H -u root -- /bin/sh -c 'id -u'"
        );
        assert_eq!(
            wrap("id", true, Some("app")),
            "sudo -n -H -u app -- /bin/sh -c id"
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
