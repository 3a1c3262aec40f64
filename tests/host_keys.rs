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
fn known_line(lab: &Lab, host: &LabHost) -> String {
    let text = fs::read_to_string(lab.known_hosts()).unwrap();
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
    let text = fs::read_to_string(lab.known_hosts())
        .unwrap()
        .replace(&original, &forged);
    fs::write(lab.known_hosts(), text).unwrap();
    original
}

fn remove_line(lab: &Lab, host: &LabHost) -> String {
    let original = known_line(lab, host);
    let text: String = fs::read_to_string(lab.known_hosts())
        .unwrap()
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

#[test]
fn a_changed_host_key_is_refused_even_with_accept_new_host_keys() {
    let lab = Lab::up(2);
    let playbook = lab.write("marker.yml", MARKER_PLAYBOOK);
    swap_key(&lab, lab.host("host02"));
    let before = fs::read_to_string(lab.known_hosts()).unwrap();

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
    assert_eq!(
        fs::read_to_string(lab.known_hosts()).unwrap(),
        before,
        "known_hosts was rewritten"
    );
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
