//! Which host and user names herd lets through to ssh's rules and to a
//! `Match exec` shell: the names OpenSSH itself accepts. ssh refuses a host
//! name or remote user with shell metacharacters before it reads its
//! config, because `%h`, `%n` and `%r` are pasted into commands run with
//! `$SHELL -c`; herd refuses the same names, so a name written in an
//! inventory can never become a command on the controller.

/// Why `name` is not a host name ssh accepts (`None` when it is one).
/// As ssh: no leading `-`, no quote, `` ` ``, `$`, `\`, `;`, `&`, `<`, `>`,
/// `|`, parenthesis, brace or comma, no whitespace or control character.
pub fn host_fault(name: &str) -> Option<String> {
    if name.starts_with('-') {
        return Some("starts with `-`".into());
    }
    name.chars()
        .find(|&c| "'`\"$\\;&<>|(){},".contains(c) || c.is_ascii_whitespace() || c.is_control())
        .map(refused)
}

/// Why `name` is not a remote user name ssh accepts (`None` when it is
/// one). As ssh: no leading `-`, no quote, `` ` ``, `;`, `&`, `<`, `>`,
/// `|`, parenthesis or brace, no control character, no `-` after
/// whitespace and no `\` at the end.
pub fn user_fault(name: &str) -> Option<String> {
    if name.starts_with('-') {
        return Some("starts with `-`".into());
    }
    if let Some(c) = name
        .chars()
        .find(|&c| "'`\";&<>|(){}".contains(c) || c.is_control())
    {
        return Some(refused(c));
    }
    let chars: Vec<char> = name.chars().collect();
    if chars
        .windows(2)
        .any(|pair| pair[0].is_ascii_whitespace() && pair[1] == '-')
    {
        return Some("has a `-` after whitespace".into());
    }
    if name.ends_with('\\') {
        return Some("ends with `\\`".into());
    }
    None
}

/// The error for a host name ssh refuses, as ssh words it.
pub fn check_host(name: &str) -> Result<(), String> {
    match host_fault(name) {
        Some(fault) => Err(format!(
            "hostname `{}` contains invalid characters: it {fault}; ssh refuses it too",
            shown(name)
        )),
        None => Ok(()),
    }
}

/// The error for a remote user name ssh refuses, as ssh words it.
pub fn check_user(name: &str) -> Result<(), String> {
    match user_fault(name) {
        Some(fault) => Err(format!(
            "remote username `{}` contains invalid characters: it {fault}; ssh refuses it too",
            shown(name)
        )),
        None => Ok(()),
    }
}

fn refused(c: char) -> String {
    match c {
        ' ' => "has a space".into(),
        '`' => "has a backquote".into(),
        _ => format!("has `{}`", shown(&c.to_string())),
    }
}

/// `text` with its control characters written as escapes (`\n`, `\u{1b}`),
/// so that an error message stays on its line.
pub fn shown(text: &str) -> String {
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for name in [
            "web1",
            "web-01.example.com",
            "db_2",
            "10.0.0.5",
            "::1",
            "[fe80::1]",
            "[fe80::1]:2222",
            "fe80::1%eth0",
            "bastion.corp:2201",
            "ssh://ops@gw:22",
            "héte.example",
        ] {
            assert_eq!(host_fault(name), None, "{name}");
        }
        for user in [
            "deploy",
            "app-user",
            "a.b_c",
            "DOMAIN\\user",
            "first last",
            "host$",
        ] {
            assert_eq!(user_fault(user), None, "{user}");
        }
    }

    #[test]
    fn names_ssh_refuses_are_refused_with_the_character() {
        for (name, fault) in [
            ("evil$(touch /tmp/p)", "has `$`"),
            ("h;touch /tmp/p;", "has `;`"),
            ("a b", "has a space"),
            ("a`id`", "has a backquote"),
            ("a\"b", "has `\"`"),
            ("a'b", "has `'`"),
            ("a\\b", "has `\\`"),
            ("a&b", "has `&`"),
            ("a|b", "has `|`"),
            ("a<b", "has `<`"),
            ("a>b", "has `>`"),
            ("a(b", "has `(`"),
            ("a{b}", "has `{`"),
            ("a,b", "has `,`"),
            ("a\tb", "has `\\t`"),
            ("a\nb", "has `\\n`"),
            ("a\u{1b}b", "has `\\u{1b}`"),
            ("-oProxyCommand=x", "starts with `-`"),
        ] {
            assert_eq!(host_fault(name).as_deref(), Some(fault), "{name}");
        }
        for (user, fault) in [
            ("a;b", "has `;`"),
            ("$(id)", "has `(`"),
            ("-l", "starts with `-`"),
            ("a -o", "has a `-` after whitespace"),
            ("a\\", "ends with `\\`"),
            ("a\nb", "has `\\n`"),
        ] {
            assert_eq!(user_fault(user).as_deref(), Some(fault), "{user}");
        }
        assert_eq!(
            check_host("h;x").unwrap_err(),
            "hostname `h;x` contains invalid characters: it has `;`; ssh refuses it too"
        );
        assert_eq!(
            check_user("a|b").unwrap_err(),
            "remote username `a|b` contains invalid characters: it has `|`; ssh refuses it too"
        );
    }
}
