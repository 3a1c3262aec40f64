//! `herd exec`: one command on every host, each output line prefixed with the
//! host's name; an unreachable host is reported and fails the run, the others
//! still answer.

mod common;

use std::collections::BTreeMap;

use common::Lab;

/// `echo $SSH_CONNECTION` prints `client_ip client_port server_ip server_port`:
/// the server's address and port tell which lab host really answered.
const WHO_ANSWERS: &str = "echo $SSH_CONNECTION";

/// Parses stdout lines `hostNN: CLIENT CPORT SERVER SPORT` into
/// host name -> list of `SERVER:SPORT` it printed.
fn answers(stdout: &str) -> BTreeMap<String, Vec<String>> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in stdout.lines() {
        let (host, rest) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("stdout line without a `host: ` prefix: {line:?}"));
        let fields: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(fields.len(), 4, "not an SSH_CONNECTION line: {line:?}");
        found
            .entry(host.to_string())
            .or_default()
            .push(format!("{}:{}", fields[2], fields[3]));
    }
    found
}

fn expected(lab: &Lab, except: Option<&str>) -> BTreeMap<String, Vec<String>> {
    lab.hosts()
        .iter()
        .filter(|h| Some(h.name.as_str()) != except)
        .map(|h| {
            (
                h.name.clone(),
                vec![format!("{}:{}", h.address, h.ssh_port)],
            )
        })
        .collect()
}

#[test]
fn every_host_answers_once_under_its_own_name() {
    let lab = Lab::up(6);

    let run = lab.herd(["exec"]).args(["--", WHO_ANSWERS]).run();

    run.assert_code(0);
    // Six lines, one per host, each from that host's own sshd (address and port).
    assert_eq!(run.stdout().lines().count(), 6, "{run}");
    assert_eq!(answers(run.stdout()), expected(&lab, None), "{run}");
    for host in lab.hosts() {
        assert_eq!(run.summary_result(&host.name), "done", "{run}");
    }
}

#[test]
fn a_host_whose_sshd_is_gone_is_reported_unreachable_and_the_rest_answer() {
    let lab = Lab::up(6);
    lab.herd(["exec"]).args(["--", "true"]).run().assert_code(0);
    let dead = lab.host("host04");

    dead.kill_sshd();
    let run = lab.herd(["exec"]).args(["--", WHO_ANSWERS]).run();

    run.assert_code(1);
    assert_eq!(run.stdout().lines().count(), 5, "{run}");
    assert_eq!(
        answers(run.stdout()),
        expected(&lab, Some("host04")),
        "{run}"
    );
    let unreachable = run.unreachable_lines();
    assert_eq!(unreachable.len(), 1, "{run}");
    assert!(unreachable[0].starts_with("host04: UNREACHABLE: "), "{run}");
    assert_eq!(run.summary_result("host04"), "unreachable", "{run}");
    for host in lab.hosts().iter().filter(|h| h.name != "host04") {
        assert_eq!(run.summary_result(&host.name), "done", "{run}");
    }
    assert!(run.stderr().contains("6 host(s) in"), "{run}");
    assert!(run.stderr().contains("5 done, 1 unreachable"), "{run}");
}
