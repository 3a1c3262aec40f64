//! Credentials from the environment, as a CI job holds them in its secrets:
//! the key in `HERD_SSH_KEY` (unlocked by `HERD_SSH_KEY_PASSPHRASE`) logs in
//! to every host with no key file in the inventory, `HERD_KNOWN_HOSTS`
//! stands in for the known_hosts file under the same rules, neither is ever
//! written to disk, and neither shows in any output.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::{Herd, Lab, Run};

/// The lab inventory without `ansible_ssh_private_key_file` and
/// `herd_known_hosts`: the environment has to provide both.
fn inventory_without_files(lab: &Lab) -> PathBuf {
    lab.edited_inventory("ci.yml", |text| {
        text.lines()
            .filter(|l| {
                !l.trim_start().starts_with("ansible_ssh_private_key_file:")
                    && !l.trim_start().starts_with("herd_known_hosts:")
            })
            .map(|l| format!("{l}\n"))
            .collect()
    })
}

/// The base64 lines of a private key's text: what must never leak.
fn body_lines(key: &str) -> Vec<String> {
    key.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect()
}

/// `herd exec` on the CI inventory with HOME and TMPDIR of their own.
fn ci_herd(inventory: &Path, home: &Path, tmp: &Path, command: &[&str]) -> Herd {
    ci_herd_with(inventory, home, tmp, &[], command)
}

/// [`ci_herd`] with `options` before the command.
fn ci_herd_with(
    inventory: &Path,
    home: &Path,
    tmp: &Path,
    options: &[&std::ffi::OsStr],
    command: &[&str],
) -> Herd {
    Herd::new()
        .args(["exec", "-i"])
        .arg(inventory)
        .args(options)
        .arg("--")
        .args(command)
        .env("HOME", home)
        .env("TMPDIR", tmp)
}

/// Every regular file under `dir` (symlinks not followed) modified at or
/// after `since` and small enough to be a key file.
fn files_changed_since(dir: &Path, since: SystemTime, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            files_changed_since(&path, since, found);
        } else if kind.is_file() {
            let recent = entry
                .metadata()
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
                .is_some_and(|(modified, len)| modified >= since && len < 1 << 20);
            if recent {
                found.push(path);
            }
        }
    }
}

/// Files under `dirs` written since `since` that hold any of `lines`.
fn files_holding(dirs: &[&Path], since: SystemTime, lines: &[String]) -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    for dir in dirs {
        files_changed_since(dir, since, &mut candidates);
    }
    candidates
        .into_iter()
        .filter(|path| {
            fs::read(path).is_ok_and(|bytes| {
                let text = String::from_utf8_lossy(&bytes);
                lines.iter().any(|line| text.contains(line.as_str()))
            })
        })
        .collect()
}

fn assert_no_secret_in_output(run: &Run, secrets: &[String]) {
    for secret in secrets {
        assert!(
            !run.stdout().contains(secret.as_str()) && !run.stderr().contains(secret.as_str()),
            "a secret ({} chars) shows in herd's output\n{run}",
            secret.len()
        );
    }
}

fn entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// `Connection from` lines in every host's sshd log.
fn connections(lab: &Lab) -> usize {
    lab.hosts()
        .iter()
        .map(|host| {
            fs::read_to_string(lab.sshd_log(&host.name))
                .unwrap_or_default()
                .matches("Connection from ")
                .count()
        })
        .sum()
}

/// `hostNN: LINE` for every host, sorted.
fn answers(run: &Run) -> Vec<String> {
    let mut lines: Vec<String> = run.stdout().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn the_key_and_known_hosts_from_the_environment_log_in_and_no_file_holds_them() {
    let lab = Lab::up(2);
    let inventory = inventory_without_files(&lab);
    let key = fs::read_to_string(lab.private_key()).unwrap();
    let known_hosts = fs::read_to_string(lab.known_hosts()).unwrap();
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let body = body_lines(&key);
    assert!(body.len() >= 3, "{key}");
    let started = SystemTime::now();

    // As a CI secret often comes: CRLF line ends, no final newline.
    let run = ci_herd(&inventory, home.path(), tmp.path(), &["echo", "ok"])
        .env("HERD_SSH_KEY", key.trim_end().replace('\n', "\r\n"))
        .env("HERD_KNOWN_HOSTS", &known_hosts)
        .run();

    run.assert_code(0);
    assert_eq!(answers(&run), ["host01: ok", "host02: ok"], "{run}");
    assert_eq!(entries(home.path()), Vec::<String>::new(), "HOME");
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "TMPDIR");
    let system_tmp = Path::new("/tmp");
    let holding = files_holding(
        &[lab.dir(), system_tmp, &std::env::temp_dir()],
        started,
        &body,
    );
    assert_eq!(holding, Vec::<PathBuf>::new(), "files written with the key");
    let mut secrets = body.clone();
    secrets.push(known_hosts.lines().next().unwrap().to_string());
    assert_no_secret_in_output(&run, &secrets);

    // Without the environment's key there is nothing to log in with.
    let run = ci_herd(&inventory, home.path(), tmp.path(), &["true"])
        .env("HERD_KNOWN_HOSTS", &known_hosts)
        .run();
    run.assert_code(1);
    assert!(
        run.stderr().contains(
            "no key to offer: set ansible_ssh_private_key_file or HERD_SSH_KEY, or load a key into ssh-agent"
        ),
        "{run}"
    );
}

#[test]
fn a_line_of_the_key_or_the_passphrase_echoed_by_a_host_is_masked() {
    let lab = Lab::up(1);
    let inventory = inventory_without_files(&lab);
    let encrypted = encrypted_copy(&lab, "echo-passphrase-71");
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let line = body_lines(&encrypted)[1].clone();

    let run = ci_herd(
        &inventory,
        home.path(),
        tmp.path(),
        &["echo", &line, "echo-passphrase-71"],
    )
    .env("HERD_SSH_KEY", &encrypted)
    .env("HERD_SSH_KEY_PASSPHRASE", "echo-passphrase-71")
    .env(
        "HERD_KNOWN_HOSTS",
        fs::read_to_string(lab.known_hosts()).unwrap(),
    )
    .run();

    run.assert_code(0);
    assert_eq!(answers(&run), ["host01: *** ***"], "{run}");
    assert_no_secret_in_output(&run, &[line, "echo-passphrase-71".to_string()]);
}

/// The lab's key encrypted with `passphrase` (`ssh-keygen -p`), as text.
fn encrypted_copy(lab: &Lab, passphrase: &str) -> String {
    let copy = lab.dir().join("id_encrypted");
    fs::copy(lab.private_key(), &copy).unwrap();
    let status = Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", passphrase, "-f"])
        .arg(&copy)
        .status()
        .expect("ssh-keygen");
    assert!(status.success(), "ssh-keygen -p failed");
    let text = fs::read_to_string(&copy).unwrap();
    fs::remove_file(&copy).unwrap();
    text
}

#[test]
fn an_encrypted_key_needs_its_passphrase_and_without_it_no_host_is_contacted() {
    let lab = Lab::up(2);
    let inventory = inventory_without_files(&lab);
    let passphrase = "unlock-me-Q7z";
    let encrypted = encrypted_copy(&lab, passphrase);
    let known_hosts = fs::read_to_string(lab.known_hosts()).unwrap();
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut secrets = body_lines(&encrypted);
    secrets.push(passphrase.to_string());

    let run = ci_herd(&inventory, home.path(), tmp.path(), &["echo", "ok"])
        .env("HERD_SSH_KEY", &encrypted)
        .env("HERD_SSH_KEY_PASSPHRASE", passphrase)
        .env("HERD_KNOWN_HOSTS", &known_hosts)
        .run();
    run.assert_code(0);
    assert_eq!(answers(&run), ["host01: ok", "host02: ok"], "{run}");
    assert_no_secret_in_output(&run, &secrets);

    let before = connections(&lab);
    let cases = [
        (
            None,
            "error: HERD_SSH_KEY holds an encrypted key: set HERD_SSH_KEY_PASSPHRASE to its passphrase (herd never prompts)\n",
        ),
        (
            Some("not-the-passphrase"),
            "error: HERD_SSH_KEY_PASSPHRASE does not unlock the key in HERD_SSH_KEY\n",
        ),
    ];
    for (given, message) in cases {
        let mut herd = ci_herd(&inventory, home.path(), tmp.path(), &["echo", "ok"])
            .env("HERD_SSH_KEY", &encrypted)
            .env("HERD_KNOWN_HOSTS", &known_hosts);
        if let Some(given) = given {
            herd = herd.env("HERD_SSH_KEY_PASSPHRASE", given);
        }
        let started = Instant::now();
        let run = herd.run();
        run.assert_code(2);
        assert_eq!(run.stderr(), message, "{run}");
        assert_eq!(run.stdout(), "", "{run}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert_no_secret_in_output(&run, &secrets);
    }
    assert_eq!(connections(&lab), before, "a host was contacted");

    // A malformed key is named, not quoted.
    let damaged: String = encrypted
        .lines()
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    let run = ci_herd(&inventory, home.path(), tmp.path(), &["true"])
        .env("HERD_SSH_KEY", &damaged)
        .run();
    run.assert_code(2);
    assert!(
        run.stderr()
            .starts_with("error: HERD_SSH_KEY does not hold a private key herd can read: "),
        "{run}"
    );
    assert_no_secret_in_output(&run, &secrets);
    assert_eq!(connections(&lab), before, "a host was contacted");
}

#[test]
fn known_hosts_text_with_another_key_is_refused_as_a_file_would_be() {
    let lab = Lab::up(2);
    let inventory = inventory_without_files(&lab);
    let key = fs::read_to_string(lab.private_key()).unwrap();
    let known_hosts = fs::read_to_string(lab.known_hosts()).unwrap();
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let lines: Vec<&str> = known_hosts.lines().collect();
    let blob = |line: &str| line.split_whitespace().nth(2).unwrap().to_string();
    // host02's line carries host01's key.
    let host01 = lab.host("host01").known_hosts_name();
    let another_blob = blob(
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{host01} ")))
            .unwrap(),
    );
    let host02 = lab.host("host02").known_hosts_name();
    let number = 1 + lines
        .iter()
        .position(|l| l.starts_with(&format!("{host02} ")))
        .unwrap();
    let forged: String = lines
        .iter()
        .map(|line| {
            if line.starts_with(&format!("{host02} ")) {
                format!("{}\n", line.replace(&blob(line), &another_blob))
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert_ne!(forged, known_hosts);

    let run = ci_herd(&inventory, home.path(), tmp.path(), &["echo", "ok"])
        .env("HERD_SSH_KEY", &key)
        .env("HERD_KNOWN_HOSTS", &forged)
        .run();

    run.assert_code(1);
    assert_eq!(answers(&run), ["host01: ok"], "{run}");
    let refusal = run
        .stderr()
        .lines()
        .find(|l| l.starts_with("host02: UNREACHABLE: "))
        .unwrap_or_else(|| panic!("host02 not refused\n{run}"));
    assert!(
        refusal.contains(&format!(
            "HOST KEY CHANGED for {host02}: it does not match line {number} of HERD_KNOWN_HOSTS"
        )),
        "{run}"
    );
    let mut secrets = body_lines(&key);
    secrets.extend(lines.iter().map(|l| blob(l)));
    assert_no_secret_in_output(&run, &secrets);
    assert_eq!(entries(home.path()), Vec::<String>::new(), "HOME");

    // `--known-hosts` on the command line wins over the environment.
    let options = [
        std::ffi::OsStr::new("--known-hosts"),
        lab.known_hosts().as_os_str(),
    ];
    let run = ci_herd_with(
        &inventory,
        home.path(),
        tmp.path(),
        &options,
        &["echo", "ok"],
    )
    .env("HERD_SSH_KEY", &key)
    .env("HERD_KNOWN_HOSTS", &forged)
    .run();
    run.assert_code(0);
    assert_eq!(answers(&run), ["host01: ok", "host02: ok"], "{run}");

    // A host the text does not list is unknown; `--accept-new-host-keys`
    // trusts it for this run, with no file to record it in.
    let without_host02: String = lines
        .iter()
        .filter(|l| !l.starts_with(&format!("{host02} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    let run = ci_herd(&inventory, home.path(), tmp.path(), &["echo", "ok"])
        .env("HERD_SSH_KEY", &key)
        .env("HERD_KNOWN_HOSTS", &without_host02)
        .run();
    run.assert_code(1);
    assert!(
        run.stderr().contains(&format!(
            "host02: UNREACHABLE: host key for {host02} is not in HERD_KNOWN_HOSTS (use --accept-new-host-keys to trust it on first use)"
        )),
        "{run}"
    );
    let options = [std::ffi::OsStr::new("--accept-new-host-keys")];
    let run = ci_herd_with(
        &inventory,
        home.path(),
        tmp.path(),
        &options,
        &["echo", "ok"],
    )
    .env("HERD_SSH_KEY", &key)
    .env("HERD_KNOWN_HOSTS", &without_host02)
    .run();
    run.assert_code(0);
    assert_eq!(answers(&run), ["host01: ok", "host02: ok"], "{run}");
    assert_eq!(entries(home.path()), Vec::<String>::new(), "HOME");
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "TMPDIR");
}
