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

/// `script` run as `become_user` (root when not given) through `sudo -n`
/// without being on any command line: the login shell's `printf` (a
/// builtin, no process of its own) pipes it to a `/bin/sh` under sudo that
/// reads it and evaluates it, so neither `ps` nor sudo's log shows it. For
/// a script that holds a secret; its commands read no stdin (as with
/// [`wrap`], whose commands get `/dev/null`).
pub fn wrap_hidden(script: &str, become_user: Option<&str>) -> String {
    let user = become_user.unwrap_or("root");
    format!(
        "printf '%s\\n' {} | sudo -n -H -u {} -- /bin/sh -c 'eval \"$(cat)\"'",
        quote(script),
        quote(user)
    )
}

/// `text` as one line of a log: each control character but a tab (a
/// newline, a carriage return, an escape) a space, and no space at either
/// end, so a name cannot end herd's line early and start one herd did not
/// write.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if (c.is_control() && c != '\t') || reorders(c) {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// One line a host printed, made safe to print inside herd's own line:
/// what a terminal would leave of it after a carriage return (the text after
/// the last one), with its colours (SGR escapes) and tabs, and without any
/// other control: no cursor move, erase, title or GitLab section marker, so
/// a host cannot overwrite or fake a line of herd's.
pub fn printable(line: &str) -> String {
    clean(line, true)
}

/// `lines` lines at the end of what a host printed, each [`printable`] and
/// without colours either: for a Markdown summary or a CI annotation, where
/// an escape shows as litter.
pub fn text_tail(text: &str, lines: usize) -> String {
    let tail = tail(text, lines);
    let kept: Vec<String> = tail.lines().map(|line| clean(line, false)).collect();
    kept.join("\n")
}

/// `line` (already [`printable`]) without its colours.
pub fn without_colours(line: &str) -> String {
    clean(line, false)
}

fn clean(line: &str, colours: bool) -> String {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let line = line.rsplit('\r').next().unwrap_or(line);
    let mut out = String::with_capacity(line.len());
    let mut coloured = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters, intermediates, then one final byte.
                Some('[') => {
                    let mut sequence = String::from("\x1b[");
                    for c in chars.by_ref() {
                        sequence.push(c);
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                    let colour = sequence.ends_with('m')
                        && sequence[2..sequence.len() - 1]
                            .chars()
                            .all(|c| c.is_ascii_digit() || c == ';');
                    if colour && colours {
                        out.push_str(&sequence);
                        coloured = true;
                    }
                }
                // OSC: up to BEL or ESC \.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => out.push(c),
            c if c.is_control() || reorders(c) => {}
            c => out.push(c),
        }
    }
    // A colour ends with the host's line: none (concealed text, black on
    // black) carries over onto herd's next one.
    if coloured {
        out.push_str("\x1b[0m");
    }
    out
}

/// A character that shows nothing of its own but changes how a line reads:
/// a line or paragraph separator, a zero-width one, or a bidirectional
/// override (U+202E writes what follows right to left).
pub fn reorders(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
    )
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
        assert_eq!(one_line("a\tb"), "a\tb");
        assert_eq!(one_line("ok\u{202E}deliaf\u{2028}x"), "ok deliaf x");
    }

    #[test]
    fn printable_keeps_colours_and_drops_every_other_control() {
        assert_eq!(
            printable("\x1b[31merror\x1b[0m: x\r"),
            "\x1b[31merror\x1b[0m: x\x1b[0m"
        );
        assert_eq!(printable("a\x1b[8mhidden"), "a\x1b[8mhidden\x1b[0m");
        assert_eq!(printable("50%\r100%"), "100%");
        assert_eq!(printable("evil\rhost02: reload: ok"), "host02: reload: ok");
        assert_eq!(
            printable("\x1b[0Ksection_end:1:herd_batch_1\x1b[2K\x1b[1A"),
            "section_end:1:herd_batch_1"
        );
        assert_eq!(printable("a\x1b]0;title\x07b\x1b]8;;u\x1b\\c"), "abc");
        assert_eq!(printable("tab\there\x08\x07\u{9b}2K"), "tab\there2K");
        assert_eq!(printable("unfinished \x1b[31"), "unfinished ");
        assert_eq!(
            text_tail("one\ntwo\x1b[1A\n\x1b[31mthree\x1b[0m\r\n", 2),
            "two\nthree"
        );
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
