//! Authentication: an RSA key file (signing with rsa-sha2, which OpenSSH
//! requires), ssh-agent keys (tried first, unless `--no-agent`), and a key the
//! host does not know.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{wait_until, Lab};

/// Makes a key pair with ssh-keygen; returns the private key's path.
fn keygen(dir: &Path, name: &str, kind: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name])
        .args(kind)
        .arg("-f")
        .arg(&path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success(), "ssh-keygen {kind:?} failed");
    path
}

/// `SHA256:...`, the fingerprint sshd logs for a key.
fn fingerprint(private_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(private_key.with_extension("pub"))
        .output()
        .expect("ssh-keygen -l");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .expect("a fingerprint")
        .to_string()
}

/// A copy of the lab inventory whose key file is `key`.
fn inventory_with_key(lab: &Lab, name: &str, key: &Path) -> PathBuf {
    let lab_key = lab.private_key().display().to_string();
    lab.edited_inventory(name, |text| {
        text.replace(
            &format!("ansible_ssh_private_key_file: {lab_key}\n"),
            &format!("ansible_ssh_private_key_file: {}\n", key.display()),
        )
    })
}

/// `Accepted publickey` lines of every host's sshd log naming `fingerprint`.
fn accepted_with(lab: &Lab, host: &str, fingerprint: &str) -> Vec<String> {
    fs::read_to_string(lab.sshd_log(host))
        .unwrap()
        .lines()
        .filter(|l| l.contains("Accepted publickey for ") && l.contains(fingerprint))
        .map(str::to_string)
        .collect()
}

/// `hostNN: ok` once per host, from `herd exec -- echo ok`.
fn answered(stdout: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort_unstable();
    lines
}

#[test]
fn an_rsa_key_file_logs_in_with_rsa_sha2() {
    let lab = Lab::up(2);
    let key = keygen(lab.dir(), "id_rsa", &["-t", "rsa", "-b", "3072"]);
    let public = fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut keys = fs::read_to_string(lab.authorized_keys()).unwrap();
    keys.push_str(&public);
    fs::write(lab.authorized_keys(), keys).unwrap();
    let inventory = inventory_with_key(&lab, "rsa.yml", &key);
    let rsa = fingerprint(&key);

    let run = common::Herd::new()
        .args(["exec", "--no-agent", "-i"])
        .arg(&inventory)
        .args(["--", "echo", "ok"])
        .run();

    run.assert_code(0);
    assert_eq!(
        answered(run.stdout()),
        ["host01: ok", "host02: ok"],
        "{run}"
    );
    for host in lab.hosts() {
        let accepted = accepted_with(&lab, &host.name, &rsa);
        assert_eq!(accepted.len(), 1, "{}: {accepted:?}\n{run}", host.name);
        assert!(
            accepted[0].contains(&format!("ssh2: RSA {rsa}")),
            "{}: {}",
            host.name,
            accepted[0]
        );
    }
}

/// An `ssh-agent -D` on a socket of the test's own, killed when dropped.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent");
        let agent = Agent { child, socket };
        assert!(
            wait_until(Duration::from_secs(10), || agent.socket.exists()),
            "ssh-agent never made its socket"
        );
        agent
    }

    fn add(&self, key: &Path) {
        let status = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stderr(Stdio::null())
            .status()
            .expect("ssh-add");
        assert!(status.success(), "ssh-add {} failed", key.display());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn agent_keys_log_in_when_the_key_file_is_missing_unless_no_agent() {
    let lab = Lab::up(2);
    let agent = Agent::start(lab.dir());
    agent.add(lab.private_key());
    let missing = lab.dir().join("no-such-key");
    let inventory = inventory_with_key(&lab, "agent.yml", &missing);
    let lab_key = fingerprint(lab.private_key());
    let before: Vec<usize> = lab
        .hosts()
        .iter()
        .map(|h| accepted_with(&lab, &h.name, &lab_key).len())
        .collect();

    let with_agent = common::Herd::new()
        .args(["exec", "-i"])
        .arg(&inventory)
        .args(["--", "echo", "ok"])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .run();
    let without = common::Herd::new()
        .args(["exec", "--no-agent", "-i"])
        .arg(&inventory)
        .args(["--", "echo", "ok"])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .run();

    with_agent.assert_code(0);
    assert_eq!(
        answered(with_agent.stdout()),
        ["host01: ok", "host02: ok"],
        "{with_agent}"
    );
    // One more login per host with the agent's key; the run without the
    // agent added none.
    for (host, before) in lab.hosts().iter().zip(before) {
        assert_eq!(
            accepted_with(&lab, &host.name, &lab_key).len(),
            before + 1,
            "{}\n{with_agent}\n{without}",
            host.name
        );
    }
    without.assert_code(1);
    assert_eq!(without.stdout(), "", "{without}");
    for host in lab.hosts() {
        assert_eq!(
            without.summary_result(&host.name),
            "unreachable",
            "{without}"
        );
        let row = without.summary_row(&host.name);
        assert!(
            row.contains(&missing.display().to_string()),
            "the reason does not name the missing key file: {row}\n{without}"
        );
    }
}

#[test]
fn a_key_the_hosts_do_not_know_fails_authentication() {
    let lab = Lab::up(2);
    let stranger = keygen(lab.dir(), "id_stranger", &["-t", "ed25519"]);
    let inventory = inventory_with_key(&lab, "stranger.yml", &stranger);

    let run = common::Herd::new()
        .args(["exec", "--no-agent", "-i"])
        .arg(&inventory)
        .args(["--", "echo", "ok"])
        .run();

    run.assert_code(1);
    assert_eq!(run.stdout(), "", "a command ran\n{run}");
    for host in lab.hosts() {
        assert_eq!(run.summary_result(&host.name), "unreachable", "{run}");
        assert!(
            run.stderr().lines().any(|l| l.starts_with(&format!(
                "{}: UNREACHABLE: authentication failed for {}@{}",
                host.name,
                lab.user(),
                host.name
            ))),
            "{run}"
        );
    }
    assert!(accepted_with(&lab, "host01", &fingerprint(&stranger)).is_empty());
}
