//! Credentials a CI job hands herd in its environment instead of on disk:
//! `HERD_SSH_KEY`, a private key's text (unlocked by
//! `HERD_SSH_KEY_PASSPHRASE` when it is encrypted), and `HERD_KNOWN_HOSTS`,
//! known_hosts text. They are read once, before any host is contacted,
//! decoded in memory and never written anywhere; every piece of their text
//! that could be echoed is listed for secret masking. A key that cannot be
//! used (encrypted without its passphrase, a wrong passphrase, damaged) is
//! bad input: herd never prompts, and no error quotes the text.

use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;

use russh::keys::{self, PrivateKey};

pub const KEY_VAR: &str = "HERD_SSH_KEY";
pub const PASSPHRASE_VAR: &str = "HERD_SSH_KEY_PASSPHRASE";
pub const KNOWN_HOSTS_VAR: &str = "HERD_KNOWN_HOSTS";

/// Pieces of secret text shorter than this (the tail of a key's body, say)
/// are not listed for masking: masked everywhere, they would hide ordinary words.
const SHORTEST_MASKED: usize = 16;

/// Why the environment's credentials cannot be used. No message quotes them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("{var} is set but empty: is the CI secret it comes from defined?")]
    Empty { var: &'static str },
    #[error("{var} is not UTF-8 text")]
    NotText { var: &'static str },
    #[error("{KEY_VAR} holds an encrypted key: set {PASSPHRASE_VAR} to its passphrase (herd never prompts)")]
    NeedsPassphrase,
    #[error("{PASSPHRASE_VAR} does not unlock the key in {KEY_VAR}")]
    WrongPassphrase,
    #[error("{PASSPHRASE_VAR} is set but {KEY_VAR} is not: the passphrase unlocks only the key in {KEY_VAR}")]
    PassphraseWithoutKey,
    #[error("{KEY_VAR} does not hold a private key herd can read: {reason}")]
    Malformed { reason: &'static str },
}

/// What the environment provides; empty when none of the variables is set.
#[derive(Clone, Default)]
pub struct EnvCredentials {
    /// The key from `HERD_SSH_KEY`, decoded (decrypted if need be).
    pub key: Option<Arc<PrivateKey>>,
    /// The text of `HERD_KNOWN_HOSTS`.
    pub known_hosts: Option<Arc<str>>,
    /// The texts to mask in every output: the key's body lines, the
    /// passphrase, known_hosts lines and the keys in them.
    pub secrets: Vec<String>,
}

// Written by hand so that no debug output can show key material.
impl fmt::Debug for EnvCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvCredentials")
            .field("key", &self.key.as_ref().map(|_| "<from HERD_SSH_KEY>"))
            .field(
                "known_hosts",
                &self.known_hosts.as_ref().map(|_| "<from HERD_KNOWN_HOSTS>"),
            )
            .finish_non_exhaustive()
    }
}

impl EnvCredentials {
    /// Reads the process environment.
    pub fn from_env() -> Result<EnvCredentials, CredentialError> {
        EnvCredentials::read(|name| std::env::var_os(name))
    }

    /// Reads the variables through `lookup` (the environment, or a test's map).
    pub fn read(
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<EnvCredentials, CredentialError> {
        let text = |var: &'static str| -> Result<Option<String>, CredentialError> {
            match lookup(var) {
                None => Ok(None),
                Some(value) => value
                    .into_string()
                    .map(Some)
                    .map_err(|_| CredentialError::NotText { var }),
            }
        };
        let key_text = text(KEY_VAR)?;
        let passphrase = text(PASSPHRASE_VAR)?;
        let known_hosts = text(KNOWN_HOSTS_VAR)?;
        let mut secrets = Vec::new();
        let key = match (key_text, &passphrase) {
            (None, Some(_)) => return Err(CredentialError::PassphraseWithoutKey),
            (None, None) => None,
            (Some(text), _) => {
                let text = normalize(&text);
                if text.is_empty() {
                    return Err(CredentialError::Empty { var: KEY_VAR });
                }
                secrets.extend(key_secrets(&text));
                Some(Arc::new(decode(&text, passphrase.as_deref())?))
            }
        };
        if let Some(passphrase) = passphrase {
            secrets.push(passphrase);
        }
        let known_hosts = match known_hosts {
            None => None,
            Some(text) if text.trim().is_empty() => {
                return Err(CredentialError::Empty {
                    var: KNOWN_HOSTS_VAR,
                })
            }
            Some(text) => {
                secrets.extend(known_hosts_secrets(&text));
                Some(Arc::from(text))
            }
        };
        Ok(EnvCredentials {
            key,
            known_hosts,
            secrets,
        })
    }
}

/// The key's text as a file would hold it: LF line ends (CI secrets often
/// come with CRLF), no indentation or blank lines, a final newline.
fn normalize(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .fold(String::new(), |mut out, line| {
            out.push_str(line);
            out.push('\n');
            out
        })
}

/// Decodes `text`; a passphrase is used only when the key is encrypted.
fn decode(text: &str, passphrase: Option<&str>) -> Result<PrivateKey, CredentialError> {
    let encrypted_pkcs8 = text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----");
    match keys::decode_secret_key(text, None) {
        Ok(key) if !encrypted_pkcs8 => return Ok(key),
        Ok(_) | Err(keys::Error::KeyIsEncrypted) => {}
        Err(_) if encrypted_pkcs8 => {}
        Err(error) => return Err(malformed(text, &error)),
    }
    let Some(passphrase) = passphrase else {
        return Err(CredentialError::NeedsPassphrase);
    };
    keys::decode_secret_key(text, Some(passphrase)).map_err(|_| CredentialError::WrongPassphrase)
}

/// Says what is wrong with the key without quoting any of it.
fn malformed(text: &str, error: &keys::Error) -> CredentialError {
    let public = ["ssh-", "ecdsa-", "sk-"]
        .iter()
        .any(|prefix| text.starts_with(prefix));
    let reason = if public {
        "it holds a public key; set it to the private key's text"
    } else if !text.contains("-----BEGIN ") {
        "no `-----BEGIN ... PRIVATE KEY-----` line (an OpenSSH or PEM private key is expected)"
    } else {
        match error {
            keys::Error::CouldNotReadKey => {
                "no `-----BEGIN ... PRIVATE KEY-----` line herd knows (OpenSSH, PKCS#8, PKCS#1 RSA)"
            }
            keys::Error::Decode(_) => "its base64 body is damaged",
            keys::Error::UnsupportedKeyType { .. } | keys::Error::UnknownAlgorithm(_) => {
                "its key type is not supported"
            }
            _ => "the key is damaged",
        }
    };
    CredentialError::Malformed { reason }
}

/// The key's body lines (the base64 between the BEGIN and END lines), and
/// the body as one line.
fn key_secrets(text: &str) -> Vec<String> {
    let body: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("-----") && !line.contains(':'))
        .collect();
    let mut secrets: Vec<String> = body
        .iter()
        .filter(|line| line.len() >= SHORTEST_MASKED)
        .map(|line| line.to_string())
        .collect();
    if body.len() > 1 {
        secrets.push(body.concat());
    }
    secrets
}

/// Each known_hosts line, and each of its fields but the plain host names:
/// hashed names and the keys.
fn known_hosts_secrets(text: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.len() >= SHORTEST_MASKED {
            secrets.push(line.to_string());
        }
        for field in line.split_whitespace() {
            let hashed = field.starts_with("|1|");
            if field.len() >= SHORTEST_MASKED && (hashed || looks_like_base64(field)) {
                secrets.push(field.to_string());
            }
        }
    }
    secrets
}

fn looks_like_base64(field: &str) -> bool {
    field
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
}

#[cfg(test)]
mod tests;
