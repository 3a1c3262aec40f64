use std::collections::HashMap;

use super::*;

/// `ssh-keygen -t ed25519 -N "" -C fixture`: a key made for these tests.
const PLAIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDALePauU3s9AHowtECOz/1PMNMiFls0y0HkMOiV3LEIAAAAJCWPxTBlj8U
wQAAAAtzc2gtZWQyNTUxOQAAACDALePauU3s9AHowtECOz/1PMNMiFls0y0HkMOiV3LEIA
AAAEBFCJLYZZeinMkIxMj52CFYSrLB28W+rmq9WCiuFN+m28At49q5Tez0AejC0QI7P/U8
w0yIWWzTLQeQw6JXcsQgAAAAB2ZpeHR1cmUBAgMEBQY=
-----END OPENSSH PRIVATE KEY-----
";

/// The same key, `ssh-keygen -p -a 1 -N "correct horse"`.
const ENCRYPTED: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABAMHhi8He
RjgzUEnARGrqXTAAAAAQAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIMAt49q5Tez0AejC
0QI7P/U8w0yIWWzTLQeQw6JXcsQgAAAAkOZ6HEheUi9zXojHFmBc3V/SecFYO7jv0zxcNw
RYa3CpOzJg5VQTJ5UvzCeK9Ma7wI8FqxOtrgsuXnQ37Ck/2HAPH7wJQ9ML99jlJMxPSHqd
0DF1AkFg5PgS5MrRxE5WE0W7m3W6hzNSMZOo3OGtJmwqHI5tJE1XD+Gei0EEgrTRuro6Y+
bcVOJQVakWu9KzlA==
-----END OPENSSH PRIVATE KEY-----
";

const PUBLIC: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIMAt49q5Tez0AejC0QI7P/U8w0yIWWzTLQeQw6JXcsQg";

fn read(vars: &[(&str, &str)]) -> Result<EnvCredentials, CredentialError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    EnvCredentials::read(|name| map.get(name).map(OsString::from))
}

fn public_of(credentials: &EnvCredentials) -> String {
    let key = credentials.key.as_ref().expect("a key");
    key.public_key().to_openssh().unwrap()
}

#[test]
fn nothing_set_is_nothing_to_use() {
    let credentials = read(&[]).unwrap();
    assert!(credentials.key.is_none() && credentials.known_hosts.is_none());
    assert!(credentials.secrets.is_empty());
}

#[test]
fn a_key_is_read_with_crlf_line_ends_indentation_and_no_final_newline() {
    let expected = format!("ssh-ed25519 {PUBLIC} fixture");
    for text in [
        PLAIN.to_string(),
        PLAIN.trim_end().to_string(),
        PLAIN.replace('\n', "\r\n"),
        PLAIN.trim_end().replace('\n', "\r\n"),
        PLAIN.lines().map(|l| format!("  {l}\n")).collect(),
    ] {
        let credentials = read(&[(KEY_VAR, &text)]).unwrap();
        assert_eq!(public_of(&credentials), expected, "{text:?}");
    }
}

#[test]
fn an_encrypted_key_needs_its_passphrase_and_the_right_one() {
    let credentials = read(&[(KEY_VAR, ENCRYPTED), (PASSPHRASE_VAR, "correct horse")]).unwrap();
    assert_eq!(
        public_of(&credentials),
        format!("ssh-ed25519 {PUBLIC} fixture")
    );
    assert!(credentials.secrets.contains(&"correct horse".to_string()));

    let missing = read(&[(KEY_VAR, ENCRYPTED)]).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "HERD_SSH_KEY holds an encrypted key: set HERD_SSH_KEY_PASSPHRASE to its passphrase (herd never prompts)"
    );
    let wrong = read(&[(KEY_VAR, ENCRYPTED), (PASSPHRASE_VAR, "battery staple")]).unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "HERD_SSH_KEY_PASSPHRASE does not unlock the key in HERD_SSH_KEY"
    );
    // A passphrase for a key that has none is not in the way.
    let plain = read(&[(KEY_VAR, PLAIN), (PASSPHRASE_VAR, "unused")]).unwrap();
    assert!(plain.key.is_some());
}

#[test]
fn a_bad_key_is_named_and_never_quoted() {
    let damaged = PLAIN.replace("QyNTUxOQAAACDA", "QyNTUxOQ!!!ACDA");
    let cases = [
        (
            "not a key".to_string(),
            "HERD_SSH_KEY does not hold a private key herd can read: no `-----BEGIN ... PRIVATE KEY-----` line (an OpenSSH or PEM private key is expected)",
        ),
        (
            format!("ssh-ed25519 {PUBLIC} me@box"),
            "HERD_SSH_KEY does not hold a private key herd can read: it holds a public key; set it to the private key's text",
        ),
        (
            damaged,
            "HERD_SSH_KEY does not hold a private key herd can read: the key is damaged",
        ),
        (
            PLAIN.replace("B2ZpeHR1cmUBAgMEBQY=", "B2ZpeHR1cmUBAgMEBQY"),
            "HERD_SSH_KEY does not hold a private key herd can read: its base64 body is damaged",
        ),
        (
            PLAIN.replace("b3BlbnNzaC1rZXktdjEAAAAABG5v", "b3BlbnNzaC1rZXktdjIAAAAABG5v"),
            "HERD_SSH_KEY does not hold a private key herd can read: the key is damaged",
        ),
    ];
    for (text, message) in cases {
        let error = read(&[(KEY_VAR, &text)]).unwrap_err();
        assert_eq!(error.to_string(), message, "{text:?}");
    }
    assert_eq!(
        read(&[(KEY_VAR, " \r\n")]).unwrap_err().to_string(),
        "HERD_SSH_KEY is set but empty: is the CI secret it comes from defined?"
    );
    assert_eq!(
        read(&[(KNOWN_HOSTS_VAR, "\n")]).unwrap_err().to_string(),
        "HERD_KNOWN_HOSTS is set but empty: is the CI secret it comes from defined?"
    );
    assert_eq!(
        read(&[(PASSPHRASE_VAR, "pw")]).unwrap_err(),
        CredentialError::PassphraseWithoutKey
    );
}

#[test]
fn every_body_line_of_the_key_and_every_known_hosts_key_are_secrets() {
    let known = format!(
        "# fleet\n[10.0.0.1]:2222 ssh-ed25519 {PUBLIC}\n|1|6npJS3uWwlXkJF+ofKy3MOagiSs=|877E6QRdWjk1yrCnzX/Rq3VKul0= ssh-ed25519 {PUBLIC}\n"
    );
    let credentials = read(&[(KEY_VAR, PLAIN), (KNOWN_HOSTS_VAR, &known)]).unwrap();
    let secrets = &credentials.secrets;
    for line in PLAIN.lines().filter(|l| !l.starts_with("-----")) {
        assert!(secrets.contains(&line.to_string()), "{line}");
    }
    assert!(secrets.contains(&PUBLIC.to_string()));
    assert!(secrets
        .contains(&"|1|6npJS3uWwlXkJF+ofKy3MOagiSs=|877E6QRdWjk1yrCnzX/Rq3VKul0=".to_string()));
    assert!(secrets.contains(&format!("[10.0.0.1]:2222 ssh-ed25519 {PUBLIC}")));
    // Host names and key types stay readable; comments are not keys.
    for plain in ["[10.0.0.1]:2222", "ssh-ed25519", "# fleet", "fleet"] {
        assert!(!secrets.contains(&plain.to_string()), "{plain}");
    }
    assert_eq!(credentials.known_hosts.as_deref(), Some(known.as_str()));
    let debug = format!("{credentials:?}");
    assert!(!debug.contains("AAAA"), "{debug}");
}
