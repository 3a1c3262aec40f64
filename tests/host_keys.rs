//! Host keys: a changed key is always refused and nothing runs on that host;
//! an unknown key is refused unless `--accept-new-host-keys`, which then
//! records it in known_hosts.

mod common;

use std::fs;
use std::process::Command;

use common::{Lab, LabHost};

/// Writes a marker into each host's app_dir. `max_fail: 1` lets the rollout
/// go on with one host refused, so the other hosts show what would have run.
const MARKER_PLAYBOOK: &str = "\
name: Leave a marker
hosts: web
rolling:
  batch: 100%
  max_fail: 1
steps:
  - name: Touch the marker
    run: touch {{ app_dir }}/marker
";

/// The known_hosts line of `host`, as the lab wrote it.
/// What the lab's known_hosts file holds now.
fn known_hosts_text(lab: &Lab) -> String {
    fs::read_to_string(lab.known_hosts()).unwrap()
}

fn known_line(lab: &Lab, host: &LabHost) -> String {
    let text = known_hosts_text(lab);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(host.known_hosts_name().as_str()))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "known_hosts should have one line for {}:\n{text}",
        host.name
    );
    lines[0].to_string()
}

/// The base64 key blob of a known_hosts or .pub line.
fn key_blob(line: &str) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields
        .iter()
        .position(|f| f.starts_with("ssh-") || f.starts_with("ecdsa-"))
        .unwrap();
    fields[at + 1].to_string()
}

/// A fresh ed25519 public key blob, made with ssh-keygen.
fn another_key(lab: &Lab) -> String {
    let path = lab.dir().join("impostor_key");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "impostor", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    key_blob(&fs::read_to_string(path.with_extension("pub")).unwrap())
}

/// Replaces `host`'s key in known_hosts with another one; returns the old line.
fn swap_key(lab: &Lab, host: &LabHost) -> String {
    let original = known_line(lab, host);
    let forged = original.replace(&key_blob(&original), &another_key(lab));
    assert_ne!(forged, original);
    let text = known_hosts_text(lab).replace(&original, &forged);
    fs::write(lab.known_hosts(), text).unwrap();
    original
}

fn remove_line(lab: &Lab, host: &LabHost) -> String {
    let original = known_line(lab, host);
    let text: String = known_hosts_text(lab)
        .lines()
        .filter(|l| *l != original)
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(lab.known_hosts(), text).unwrap();
    original
}

#[test]
fn a_changed_host_key_is_refused_and_nothing_runs_there() {
    let lab = Lab::up(3);
    let playbook = lab.write("marker.yml", MARKER_PLAYBOOK);
    swap_key(&lab, lab.host("host02"));

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(1);
    let refusal = run
        .stderr()
        .lines()
        .find(|l| l.starts_with("host02: UNREACHABLE: "))
        .unwrap_or_else(|| panic!("host02 not reported unreachable\n{run}"));
    assert!(refusal.contains("HOST KEY CHANGED"), "{run}");
    assert!(
        refusal.contains(&lab.host("host02").known_hosts_name()),
        "{run}"
    );
    assert_eq!(run.summary_result("host02"), "unreachable", "{run}");
    assert!(
        !lab.app_dir("host02").join("marker").exists(),
        "marker created on the refused host\n{run}"
    );
    for name in ["host01", "host03"] {
        assert!(
            lab.app_dir(name).join("marker").exists(),
            "no marker on {name}\n{run}"
        );
        assert_eq!(run.summary_result(name), "done", "{run}");
    }
}

/// Runs the marker playbook with `--accept-new-host-keys` on a lab of two
/// whose host02 line no longer holds host02's key: host02 is refused as
/// changed, nothing runs there, and known_hosts is left as it was.
fn assert_host02_refused_as_changed(lab: &Lab) {
    let playbook = lab.write("marker.yml", MARKER_PLAYBOOK);
    let before = known_hosts_text(lab);

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .arg("--accept-new-host-keys")
        .run();

    run.assert_code(1);
    assert!(
        run.stderr()
            .contains("host02: UNREACHABLE: HOST KEY CHANGED"),
        "{run}"
    );
    assert!(!lab.app_dir("host02").join("marker").exists(), "{run}");
    assert!(lab.app_dir("host01").join("marker").exists(), "{run}");
    assert_eq!(known_hosts_text(lab), before, "known_hosts was rewritten");
}

#[test]
fn a_changed_host_key_is_refused_even_with_accept_new_host_keys() {
    let lab = Lab::up(2);
    swap_key(&lab, lab.host("host02"));
    assert_host02_refused_as_changed(&lab);
}

#[test]
fn with_max_fail_zero_a_refused_key_stops_the_rollout_before_any_host_changes() {
    let lab = Lab::up(3);
    let playbook = lab.write(
        "marker.yml",
        &MARKER_PLAYBOOK.replace("max_fail: 1", "max_fail: 0"),
    );
    swap_key(&lab, lab.host("host02"));

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(1);
    assert!(
        run.stderr()
            .contains("host02: UNREACHABLE: HOST KEY CHANGED"),
        "{run}"
    );
    for host in lab.hosts() {
        assert!(
            !host.app_dir.join("marker").exists(),
            "marker on {}\n{run}",
            host.name
        );
    }
    assert_eq!(run.summary_result("host01"), "untouched", "{run}");
    assert_eq!(run.summary_result("host03"), "untouched", "{run}");
}

#[test]
fn an_unknown_host_is_refused_until_accepted_then_recorded() {
    let lab = Lab::up(3);
    let host = lab.host("host03");
    let original = remove_line(&lab, host);

    let refused = lab.herd(["exec"]).args(["--", "true"]).run();

    refused.assert_code(1);
    let refusal = refused
        .stderr()
        .lines()
        .find(|l| l.starts_with("host03: UNREACHABLE: "))
        .unwrap_or_else(|| panic!("host03 not reported unreachable\n{refused}"));
    assert!(refusal.contains("not in"), "{refused}");
    assert!(refusal.contains("--accept-new-host-keys"), "{refused}");
    assert!(!refusal.contains("CHANGED"), "{refused}");
    assert_eq!(refused.summary_result("host01"), "done", "{refused}");

    let accepted = lab
        .herd(["exec", "--accept-new-host-keys"])
        .args(["--", "echo reached"])
        .run();

    accepted.assert_code(0);
    assert!(
        accepted.stdout().lines().any(|l| l == "host03: reached"),
        "{accepted}"
    );
    // The recorded line names the host and holds its real key (the one the lab wrote).
    let recorded = known_line(&lab, host);
    assert_eq!(key_blob(&recorded), key_blob(&original));

    // And it is usable: the next run needs no flag.
    lab.herd(["exec"]).args(["--", "true"]).run().assert_code(0);
}

/// Rewrites known_hosts through `edit`, which must change it.
fn edit_known_hosts(lab: &Lab, edit: impl FnOnce(&str) -> String) -> String {
    let before = known_hosts_text(lab);
    let after = edit(&before);
    assert_ne!(after, before, "the edit of known_hosts changed nothing");
    fs::write(lab.known_hosts(), &after).unwrap();
    after
}

/// The 1-based line of known_hosts that starts with `prefix`.
fn line_number(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in\n{text}"))
        + 1
}

#[test]
fn a_revoked_key_is_refused_and_not_learned_again_with_accept_new_host_keys() {
    let lab = Lab::up(2);
    let playbook = lab.write("marker.yml", MARKER_PLAYBOOK);
    let host = lab.host("host02");
    let original = remove_line(&lab, host);
    let written = edit_known_hosts(&lab, |text| {
        format!("{text}@revoked * ssh-ed25519 {}\n", key_blob(&original))
    });
    let revoked_at = line_number(&written, "@revoked");

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .arg("--accept-new-host-keys")
        .run();

    run.assert_code(1);
    let expected = format!(
        "host02: UNREACHABLE: HOST KEY REVOKED for {}: line {revoked_at} of {} marks its key @revoked; refusing to connect",
        host.known_hosts_name(),
        lab.known_hosts().display()
    );
    assert!(
        run.stderr().lines().any(|l| l == expected),
        "expected {expected:?}\n{run}"
    );
    assert_eq!(run.summary_result("host02"), "unreachable", "{run}");
    assert!(!lab.app_dir("host02").join("marker").exists(), "{run}");
    assert!(lab.app_dir("host01").join("marker").exists(), "{run}");
    assert_eq!(
        known_hosts_text(&lab),
        written,
        "the revoked key was learned again"
    );

    // A revoked key stays refused when a plain line holds it too.
    edit_known_hosts(&lab, |text| format!("{original}\n{text}"));
    let again = lab
        .herd(["exec", "-l", "host02"])
        .args(["--", "true"])
        .run();
    again.assert_code(1);
    assert!(
        again
            .stderr()
            .contains("host02: UNREACHABLE: HOST KEY REVOKED"),
        "{again}"
    );
}

#[test]
fn a_stale_line_before_the_right_one_does_not_refuse_the_host() {
    let lab = Lab::up(2);
    let host = lab.host("host02");
    let original = known_line(&lab, host);
    let stale = original.replace(&key_blob(&original), &another_key(&lab));
    edit_known_hosts(&lab, |text| {
        text.replace(&original, &format!("{stale}\n{original}"))
    });

    let run = lab.herd(["exec"]).args(["--", "echo reached"]).run();

    run.assert_code(0);
    assert!(
        run.stdout().lines().any(|l| l == "host02: reached"),
        "{run}"
    );
    assert!(!run.stderr().contains("CHANGED"), "{run}");
}

#[test]
fn a_cert_authority_line_is_refused_by_name_not_ignored() {
    let lab = Lab::up(2);
    let host = lab.host("host02");
    let original = remove_line(&lab, host);
    let authority = format!(
        "@cert-authority [{}]:* ssh-ed25519 {}",
        host.address,
        another_key(&lab)
    );
    let written = edit_known_hosts(&lab, |text| format!("# fleet CA\n{authority}\n{text}"));
    assert!(!written.contains(&key_blob(&original)));

    let run = lab
        .herd(["exec", "--accept-new-host-keys"])
        .args(["--", "echo reached"])
        .run();

    run.assert_code(1);
    let expected = format!(
        "host02: UNREACHABLE: {}:2: @cert-authority for {}: herd does not support host certificates; list the host's own key in known_hosts",
        lab.known_hosts().display(),
        host.known_hosts_name()
    );
    assert!(
        run.stderr().lines().any(|l| l == expected),
        "expected {expected:?}\n{run}"
    );
    assert!(
        run.stdout().lines().any(|l| l == "host01: reached"),
        "{run}"
    );
    assert_eq!(
        known_hosts_text(&lab),
        written,
        "a host under a certificate authority was learned"
    );
}

#[test]
fn hashed_host_names_are_recognised() {
    let lab = Lab::up(2);
    let status = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(lab.known_hosts())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let hashed = known_hosts_text(&lab);
    assert!(
        hashed.lines().all(|l| l.starts_with("|1|")),
        "not hashed:\n{hashed}"
    );

    let run = lab.herd(["exec"]).args(["--", "true"]).run();

    run.assert_code(0);
    assert_eq!(known_hosts_text(&lab), hashed);
}

/// A fresh RSA key pair made with ssh-keygen at `path` (and `path.pub`);
/// returns the public key's blob.
fn rsa_key(path: &std::path::Path) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "rsa", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    key_blob(&fs::read_to_string(path.with_extension("pub")).unwrap())
}

/// Puts `line` in place of `host`'s line in known_hosts.
fn replace_line(lab: &Lab, host: &LabHost, line: &str) {
    let original = known_line(lab, host);
    let text = known_hosts_text(lab).replace(&original, line);
    fs::write(lab.known_hosts(), text).unwrap();
}

#[test]
fn a_recorded_key_of_another_type_is_a_changed_key_even_with_accept_new_host_keys() {
    let lab = Lab::up(2);
    // host02's sshd has only its Ed25519 key; known_hosts pins an RSA key
    // it does not hold: a server that changed, not a new one.
    let host = lab.host("host02");
    let rsa = rsa_key(&lab.dir().join("impostor_rsa"));
    replace_line(
        &lab,
        host,
        &format!("{} ssh-rsa {rsa}", host.known_hosts_name()),
    );
    assert_host02_refused_as_changed(&lab);
}

#[test]
fn a_host_pinned_by_its_rsa_key_is_asked_for_that_key_first() {
    let lab = Lab::up(1);
    let playbook = lab.write("marker.yml", MARKER_PLAYBOOK);
    let host = lab.host("host01");
    // host01's sshd gets an RSA host key beside its Ed25519 one, and
    // known_hosts records only the RSA one.
    let host_dir = host.app_dir.parent().unwrap().to_path_buf();
    let rsa = rsa_key(&host_dir.join("ssh_host_rsa_key"));
    let config = host_dir.join("sshd_config");
    let text = fs::read_to_string(&config).unwrap();
    let with_rsa = format!(
        "{text}HostKey {}\n",
        host_dir.join("ssh_host_rsa_key").display()
    );
    fs::write(&config, with_rsa).unwrap();
    host.kill_sshd();
    common::wait_until(std::time::Duration::from_secs(10), || !host.ssh_listening());
    let status = Command::new("/usr/sbin/sshd")
        .arg("-f")
        .arg(&config)
        .status()
        .expect("sshd starts");
    assert!(status.success());
    assert!(
        common::wait_until(std::time::Duration::from_secs(10), || host.ssh_listening()),
        "sshd did not come back"
    );
    replace_line(
        &lab,
        host,
        &format!("{} ssh-rsa {rsa}", host.known_hosts_name()),
    );
    let before = known_hosts_text(&lab);

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(0);
    assert!(lab.app_dir("host01").join("marker").exists(), "{run}");
    assert_eq!(known_hosts_text(&lab), before, "known_hosts was rewritten");
}

#[test]
fn a_known_hosts_path_that_does_not_exist_is_named_as_such() {
    let lab = Lab::up(1);
    let missing = lab.dir().join("no-such-known_hosts");

    let refused = lab
        .herd(["exec"])
        .arg("--known-hosts")
        .arg(&missing)
        .args(["--", "true"])
        .run();

    refused.assert_code(1);
    let said = format!(
        "host01: UNREACHABLE: host key for {} is not in {}, a file that does not exist (use --accept-new-host-keys to trust it on first use)",
        lab.host("host01").known_hosts_name(),
        missing.display()
    );
    assert!(refused.stderr().lines().any(|l| l == said), "{refused}");
    assert!(!missing.exists());
}

#[test]
fn a_stale_line_of_another_type_before_the_right_one_does_not_refuse_the_host() {
    let lab = Lab::up(1);
    let playbook = lab.write("marker.yml", MARKER_PLAYBOOK);
    let host = lab.host("host01");
    let right = known_line(&lab, host);
    let rsa = rsa_key(&lab.dir().join("stale_rsa"));
    let both = format!("{} ssh-rsa {rsa}\n{right}", host.known_hosts_name());
    let text = known_hosts_text(&lab).replace(&right, &both);
    fs::write(lab.known_hosts(), &text).unwrap();

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(0);
    assert!(lab.app_dir("host01").join("marker").exists(), "{run}");
    assert_eq!(known_hosts_text(&lab), text, "known_hosts was rewritten");
}
