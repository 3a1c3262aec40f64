//! The `~`, `${VAR}` and `%` tokens of `IdentityFile` and
//! `UserKnownHostsFile`, with the meanings `ssh` gives them.

use std::path::Path;

/// What the `%` tokens stand for, for one host.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// `%d` and `~`.
    pub home: String,
    /// `%u`: the local account.
    pub local_user: String,
    /// `%i`: the local account's uid.
    pub uid: u32,
    /// `%l`: this machine's host name (`%L` is its first label).
    pub local_host: String,
    /// `%h`: the host name connected to (after `HostName`).
    pub host: String,
    /// `%n` and `%k`: the host as given (the alias).
    pub original: String,
    /// `%p`.
    pub port: u16,
    /// `%r`: the remote user.
    pub user: String,
}

impl Tokens {
    /// The tokens of the local machine and account, for `host` as given.
    pub fn local(home: &Path, original: &str) -> Tokens {
        Tokens {
            home: home.to_string_lossy().into_owned(),
            local_user: local_account(),
            // SAFETY: getuid(2) has no preconditions and cannot fail.
            uid: unsafe { libc::getuid() },
            local_host: local_host_name(),
            host: original.to_string(),
            original: original.to_string(),
            port: 22,
            user: local_account(),
        }
    }
}

const KNOWN: &str = "%CdhiLlnkpru";

/// An error for a `%` token or `${VAR}` that `ssh` would refuse.
pub fn check(value: &str) -> Result<(), String> {
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some(t) if KNOWN.contains(t) => {}
                Some(t) => return Err(format!("unknown token `%{t}` in `{value}`")),
                None => return Err(format!("`%` at the end of `{value}`")),
            }
        }
    }
    dollars(value).map(|_| ())
}

/// An error for a `%` token of `value` that is not one of `allowed` (or
/// `%%`), as `ssh` fails on it; `${VAR}` is left as it is.
pub fn check_tokens(value: &str, allowed: &str) -> Result<(), String> {
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some(t) if t == '%' || allowed.contains(t) => {}
                Some(t) => return Err(format!("unknown token `%{t}` in `{value}`")),
                None => return Err(format!("`%` at the end of `{value}`")),
            }
        }
    }
    Ok(())
}

/// `value` with `~/` (at its start), `${VAR}` and `%x` replaced.
pub fn expand(value: &str, tokens: &Tokens) -> String {
    let value = match value.strip_prefix("~/") {
        Some(rest) => format!("{}/{rest}", tokens.home),
        None if value == "~" => tokens.home.clone(),
        None => value.to_string(),
    };
    let value = dollars(&value).unwrap_or(value);
    expand_tokens(&value, tokens)
}

/// `value` with its `%x` tokens replaced (and nothing else).
pub fn expand_tokens(value: &str, tokens: &Tokens) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('C') => out.push_str(&connection_hash(tokens)),
            Some('d') => out.push_str(&tokens.home),
            Some('h') => out.push_str(&tokens.host),
            Some('i') => out.push_str(&tokens.uid.to_string()),
            Some('L') => out.push_str(tokens.local_host.split('.').next().unwrap_or_default()),
            Some('l') => out.push_str(&tokens.local_host),
            Some('n' | 'k') => out.push_str(&tokens.original),
            Some('p') => out.push_str(&tokens.port.to_string()),
            Some('r') => out.push_str(&tokens.user),
            Some('u') => out.push_str(&tokens.local_user),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// An error when a `%` token of the `Match exec` command `command` stands
/// for a value ssh would refuse as a host or user name: it would reach the
/// shell as written, so a name like `$(cmd)` would run `cmd`.
pub fn check_shell_tokens(command: &str, tokens: &Tokens) -> Result<(), String> {
    use super::names::{host_fault, shown, user_fault};
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        let token = chars.next();
        let (value, fault) = match token {
            Some('h') => (tokens.host.clone(), host_fault(&tokens.host)),
            Some('n' | 'k') => (tokens.original.clone(), host_fault(&tokens.original)),
            Some('r') => (tokens.user.clone(), user_fault(&tokens.user)),
            Some('u') => (tokens.local_user.clone(), user_fault(&tokens.local_user)),
            Some('d') => (tokens.home.clone(), host_fault(&tokens.home)),
            Some('l') => (tokens.local_host.clone(), host_fault(&tokens.local_host)),
            Some('L') => {
                let label = tokens.local_host.split('.').next().unwrap_or_default();
                (label.to_string(), host_fault(label))
            }
            _ => continue,
        };
        if let (Some(token), Some(fault)) = (token, fault) {
            return Err(format!(
                "`%{token}` stands for `{}`, which {fault}: herd does not run the `Match exec` command `{command}` with it (ssh refuses such a name too)",
                shown(&value)
            ));
        }
    }
    Ok(())
}

/// `${VAR}` replaced by the controller's environment; a variable that is
/// not set is an error, as in `ssh`.
fn dollars(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated `${{` in `{value}`"));
        };
        let name = &after[..end];
        match std::env::var(name) {
            Ok(v) => out.push_str(&v),
            Err(_) => {
                return Err(format!(
                    "environment variable `{name}` is not set (in `{value}`)"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `%C`: the SHA-1 (hex) of `%l%h%p%r`, as OpenSSH computes it.
fn connection_hash(tokens: &Tokens) -> String {
    use sha1::{Digest, Sha1};
    let digest = Sha1::digest(
        format!(
            "{}{}{}{}",
            tokens.local_host, tokens.host, tokens.port, tokens.user
        )
        .as_bytes(),
    );
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The local account's name (from the password database, as ssh has it;
/// `$USER` when there is no entry).
pub fn local_account() -> String {
    // SAFETY: getpwuid(3) returns a pointer into static storage or null;
    // the name is copied out at once, before any other call could reuse it.
    let name = unsafe {
        let entry = libc::getpwuid(libc::getuid());
        if entry.is_null() || (*entry).pw_name.is_null() {
            None
        } else {
            Some(
                std::ffi::CStr::from_ptr((*entry).pw_name)
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    name.or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into())
}

/// The local account's home directory from the password database (what
/// ssh's `%d` is in `Match exec`); `$HOME` when there is no entry.
pub fn account_home() -> String {
    // SAFETY: getpwuid(3) returns a pointer into static storage or null;
    // the directory is copied out at once, before any other call could reuse it.
    let dir = unsafe {
        let entry = libc::getpwuid(libc::getuid());
        if entry.is_null() || (*entry).pw_dir.is_null() {
            None
        } else {
            Some(
                std::ffi::CStr::from_ptr((*entry).pw_dir)
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    dir.or_else(|| std::env::var("HOME").ok())
        .unwrap_or_else(|| "/".into())
}

fn local_host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length, which is passed.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            home: "/home/me".into(),
            local_user: "me".into(),
            uid: 1000,
            local_host: "vm.lan".into(),
            host: "10.0.0.5".into(),
            original: "web1".into(),
            port: 2222,
            user: "deploy".into(),
        }
    }

    #[test]
    fn tokens_expand_as_in_ssh() {
        let t = tokens();
        assert_eq!(
            expand("~/.ssh/id_%h_%r_%p", &t),
            "/home/me/.ssh/id_10.0.0.5_deploy_2222"
        );
        assert_eq!(
            expand("%d/%u-%i-%L-%l-%n-%k-%%", &t),
            "/home/me/me-1000-vm-vm.lan-web1-web1-%"
        );
        // sha1("vm.lan" "10.0.0.5" "2222" "deploy")
        assert_eq!(expand("%C", &t).len(), 40);
        assert!(check("/k/%h-%j").is_err());
        assert!(check("/k/%").is_err());
        assert!(check("/k/${HERD_SURELY_UNSET_VARIABLE}").is_err());
        assert!(check("/k/%h%%").is_ok());
    }
}
