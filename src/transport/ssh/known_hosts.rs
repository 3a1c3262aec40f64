//! Reading known_hosts as OpenSSH does: host patterns with wildcards and
//! negation, hashed names (`|1|salt|hash`), several lines per host (any one
//! that holds the key accepts it), `@revoked` keys refused whatever else the
//! file says, and `@cert-authority` lines named rather than ignored (herd
//! does not verify host certificates).

use std::path::PathBuf;
use std::sync::Arc;

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{self, PublicKey};
use sha1::Sha1;

use crate::ssh_config::pattern;

/// What known_hosts says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A line for this host holds this key.
    Known,
    /// No line for this host holds a key.
    Unknown,
    /// Lines for this host hold other keys (of this type or another);
    /// `line` is the first.
    Changed { line: usize },
    /// An `@revoked` line holds this key.
    Revoked { line: usize },
    /// The host's key is vouched for only by an `@cert-authority` line.
    CertAuthority { line: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

/// Where the known_hosts lines come from: a file, or text given in the
/// environment (`HERD_KNOWN_HOSTS`), which is read by the same rules.
/// (No `Debug`: the text is a secret.)
#[derive(Clone)]
pub(super) enum Source {
    File(PathBuf),
    Text(Arc<str>),
}

impl Source {
    /// How messages name it: the file's path, or the variable.
    pub fn name(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Text(_) => super::env_credentials::KNOWN_HOSTS_VAR.to_string(),
        }
    }
}

/// The text of `source`; `None` for a missing file (it knows no host).
fn read(source: &Source) -> Result<Option<String>, String> {
    match source {
        Source::File(path) => match std::fs::read(path) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        },
        Source::Text(text) => Ok(Some(text.to_string())),
    }
}

/// Checks `key` for `host` (`[address]:port` unless the port is 22) against
/// `source`; a missing file knows no host. The error names the line of a
/// marker herd does not know.
pub(super) fn check(source: &Source, host: &str, key: &PublicKey) -> Result<Verdict, String> {
    match read(source)? {
        Some(text) => check_text(&text, host, key),
        None => Ok(Verdict::Unknown),
    }
}

/// The key types the lines for `host` hold (not `@revoked` nor
/// `@cert-authority` ones), in the order written: herd asks the server for
/// these first, as OpenSSH does, so a host pinned by its RSA key is checked
/// against that key even when it also has an Ed25519 one. Empty when the
/// source cannot be read (the check says why).
pub(super) fn recorded_algorithms(source: &Source, host: &str) -> Vec<keys::Algorithm> {
    let Ok(Some(text)) = read(source) else {
        return Vec::new();
    };
    let mut found: Vec<keys::Algorithm> = Vec::new();
    let _ = for_host(&text, host, |_, marker, recorded| {
        if let (Marker::None, Some(key)) = (marker, recorded) {
            if !found.contains(&key.algorithm()) {
                found.push(key.algorithm());
            }
        }
    });
    found
}

/// Calls `each` with the number, marker and key (`None` when herd cannot
/// read it) of every line of `text` for `host`.
fn for_host(
    text: &str,
    host: &str,
    mut each: impl FnMut(usize, Marker, Option<PublicKey>),
) -> Result<(), String> {
    let host = host.to_lowercase();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let mut fields = line.split_whitespace();
        let Some(mut first) = fields.next() else {
            continue;
        };
        if first.starts_with('#') {
            continue;
        }
        let marker = match first {
            "@revoked" => Marker::Revoked,
            "@cert-authority" => Marker::CertAuthority,
            other if other.starts_with('@') => {
                return Err(format!("line {number}: unknown marker `{other}`"));
            }
            _ => Marker::None,
        };
        if marker != Marker::None {
            match fields.next() {
                Some(hosts) => first = hosts,
                None => continue,
            }
        }
        if !host_matches(&host, first) {
            continue;
        }
        // A key type herd cannot read (or a damaged line) cannot be this
        // server's key: OpenSSH skips such lines too.
        let recorded = match (fields.next(), fields.next()) {
            (Some(_), Some(blob)) => keys::parse_public_key_base64(blob).ok(),
            _ => None,
        };
        each(number, marker, recorded);
    }
    Ok(())
}

fn check_text(text: &str, host: &str, key: &PublicKey) -> Result<Verdict, String> {
    let mut known = false;
    let mut changed = None;
    let mut authority = None;
    let mut revoked = None;
    for_host(text, host, |number, marker, recorded| match marker {
        Marker::Revoked => {
            if recorded.is_some_and(|r| r.key_data() == key.key_data()) {
                revoked.get_or_insert(number);
            }
        }
        Marker::CertAuthority => {
            authority.get_or_insert(number);
        }
        // A key of another type counts as changed too (as OpenSSH has it):
        // the server would have shown that key, had it still held it, since
        // herd asks for the recorded types first.
        Marker::None => match recorded {
            Some(r) if r.key_data() == key.key_data() => known = true,
            Some(_) => {
                changed.get_or_insert(number);
            }
            None => {}
        },
    })?;
    Ok(match (revoked, known, changed, authority) {
        (Some(line), _, _, _) => Verdict::Revoked { line },
        (None, true, _, _) => Verdict::Known,
        (None, false, Some(line), _) => Verdict::Changed { line },
        (None, false, None, Some(line)) => Verdict::CertAuthority { line },
        (None, false, None, None) => Verdict::Unknown,
    })
}

/// OpenSSH's rule: a hashed name is one name; otherwise a comma list of
/// patterns, where a matching `!pattern` excludes the host.
fn host_matches(host: &str, patterns: &str) -> bool {
    match patterns.strip_prefix("|1|") {
        Some(hashed) => hashed_matches(host, hashed),
        None => pattern::list(host, patterns, true) == Some(true),
    }
}

fn hashed_matches(host: &str, hashed: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(host.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    const KEY_ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBC9QwZf38NN1f2pGQ95Op02KS3kW9RTx1fccBG0aR2o9mOQ+019JBJpvTfLV0xlxzW+aPdGBYnZZexSqy4g7yPU=";

    fn key(blob: &str) -> PublicKey {
        keys::parse_public_key_base64(blob).unwrap()
    }

    fn verdict(text: &str, host: &str) -> Verdict {
        check_text(text, host, &key(KEY_A)).unwrap()
    }

    #[test]
    fn any_line_for_the_host_that_holds_the_key_accepts_it() {
        let text = format!("web1 ssh-ed25519 {KEY_B}\nweb1 ssh-ed25519 {KEY_A}\n");
        assert_eq!(verdict(&text, "web1"), Verdict::Known);
        let text = format!("# old\n\nweb1 ssh-ed25519 {KEY_B}\n");
        assert_eq!(verdict(&text, "web1"), Verdict::Changed { line: 3 });
        assert_eq!(verdict(&text, "web2"), Verdict::Unknown);
    }

    #[test]
    fn a_recorded_key_of_another_type_is_a_changed_key_and_asked_for_first() {
        let text = format!("web1 ecdsa-sha2-nistp256 {KEY_ECDSA}\n");
        assert_eq!(verdict(&text, "web1"), Verdict::Changed { line: 1 });
        let both = format!("{text}web1 ssh-ed25519 {KEY_A}\n");
        assert_eq!(verdict(&both, "web1"), Verdict::Known);
        let source = Source::Text(both.into());
        assert_eq!(
            recorded_algorithms(&source, "web1"),
            [key(KEY_ECDSA).algorithm(), key(KEY_A).algorithm()]
        );
        assert!(recorded_algorithms(&source, "web2").is_empty());
    }

    #[test]
    fn a_revoked_key_is_refused_whatever_else_the_file_says() {
        let text = format!("web1 ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_A}\n");
        assert_eq!(verdict(&text, "web1"), Verdict::Revoked { line: 2 });
        let other = format!("web1 ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_B}\n");
        assert_eq!(verdict(&other, "web1"), Verdict::Known);
    }

    #[test]
    fn a_certificate_authority_is_named_not_ignored() {
        let text = format!("@cert-authority *.example.com ssh-ed25519 {KEY_B}\n");
        assert_eq!(
            verdict(&text, "web1.example.com"),
            Verdict::CertAuthority { line: 1 }
        );
        assert_eq!(verdict(&text, "web1.example.org"), Verdict::Unknown);
        let unknown = check_text("@trusted web1 ssh-ed25519 x\n", "web1", &key(KEY_A));
        assert_eq!(
            unknown,
            Err("line 1: unknown marker `@trusted`".to_string())
        );
    }

    #[test]
    fn patterns_ports_and_hashed_names() {
        let text = format!("[127.0.0.?]:22*,!127.0.0.9 ssh-ed25519 {KEY_A}\n");
        assert_eq!(verdict(&text, "[127.0.0.2]:2201"), Verdict::Known);
        let text = format!("web*,!web2 ssh-ed25519 {KEY_A}\n");
        assert_eq!(verdict(&text, "web2"), Verdict::Unknown);
        assert_eq!(verdict(&text, "WEB3"), Verdict::Known);
        // `ssh-keygen -H` of "pijul.org" and "[127.0.0.2]:2201".
        let text = format!(
            "|1|6npJS3uWwlXkJF+ofKy3MOagiSs=|877E6QRdWjk1yrCnzX/Rq3VKul0= ssh-ed25519 {KEY_A}\n\
             |1|+THnUc+EowiIb9gyZjh6k4pN+RI=|X44wcogLDEWJYoGanOvaa5fkBkA= ssh-ed25519 {KEY_A}\n"
        );
        assert_eq!(verdict(&text, "pijul.org"), Verdict::Known);
        assert_eq!(verdict(&text, "[127.0.0.2]:2201"), Verdict::Known);
        assert_eq!(verdict(&text, "example.org"), Verdict::Unknown);
    }
}
