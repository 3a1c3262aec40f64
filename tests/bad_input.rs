//! Bad input ends herd with exit code 2 and a message naming `file:line:col`,
//! before any host is contacted. "Not contacted" is measured: the inventory's
//! only host is a TCP listener this test holds, and it must see no connection.

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{write_file, Herd, Run};

/// A listener standing in for the inventory's host: counts who connects.
struct FakeHost {
    listener: TcpListener,
}

impl FakeHost {
    fn new() -> FakeHost {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        FakeHost { listener }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    /// Connections accepted within a short poll (herd has exited by then, so
    /// any connection it made is already queued).
    fn connections(&self) -> usize {
        let mut count = 0;
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            match self.listener.accept() {
                Ok(_) => count += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return count;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }
}

/// A directory holding `inventory.yml` whose one host, in group `web`, is `fake`.
/// Line 5, column 9 is where the host's name starts.
fn workspace(fake: &FakeHost, host_name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "inventory.yml",
        &format!(
            "all:\n  children:\n    web:\n      hosts:\n        {host_name}: {{ ansible_host: 127.0.0.1, ansible_port: {} }}\n",
            fake.port()
        ),
    );
    dir
}

const GOOD_PLAYBOOK: &str = "name: Good\nhosts: web\nsteps:\n  - run: echo hi\n";

/// `herd run playbook.yml -i inventory.yml ARGS` in `dir` (so paths print relative).
fn run_in(dir: &Path, playbook: &str, args: &[&str]) -> Run {
    write_file(dir, "playbook.yml", playbook);
    Herd::new()
        .current_dir(dir)
        .args([
            "run",
            "playbook.yml",
            "-i",
            "inventory.yml",
            "--connect-timeout",
            "1s",
        ])
        .args(args)
        .run()
}

/// Exit 2, the location named, nothing contacted.
fn assert_refused(run: &Run, fake: &FakeHost, location: &str) {
    run.assert_code(2);
    assert!(run.stderr().starts_with("error: "), "{run}");
    assert!(
        run.stderr().contains(&format!("  --> {location}\n")),
        "expected `--> {location}`\n{run}"
    );
    assert_eq!(run.stdout(), "", "{run}");
    assert_eq!(
        fake.connections(),
        0,
        "herd connected to the host despite bad input\n{run}"
    );
}

#[test]
fn the_fake_host_does_count_connections() {
    // Control: with good input herd does connect, so a zero in the tests below
    // means "not contacted", not "the listener cannot see connections".
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &[]);

    run.assert_code(1);
    assert!(fake.connections() >= 1, "{run}");
}

#[test]
fn broken_yaml_in_a_playbook() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nsteps:\n  - run: echo hi\n   name: bad\n",
        &[],
    );

    assert_refused(&run, &fake, "playbook.yml:5:4");
}

#[test]
fn unknown_key_in_a_step() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nsteps:\n  - run: echo hi\n    colour: red\n",
        &[],
    );

    assert_refused(&run, &fake, "playbook.yml:5:5");
    assert_eq!(
        run.stderr(),
        "\
error: steps[0]: unknown key `colour`, expected one of `name`, `run`, `upload`, `cwd`, `env`, `timeout`, `become`, `become_user`, `once`, `capture`, `ignore_errors`
  --> playbook.yml:5:5
  |
5 |     colour: red
  |     ^
"
    );
}

#[test]
fn wrong_type_for_a_timeout() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nsteps:\n  - run: echo hi\n    timeout: soon\n",
        &[],
    );

    assert_refused(&run, &fake, "playbook.yml:5:14");
    assert_eq!(
        run.stderr(),
        "\
error: steps[0].timeout: invalid duration `soon`: expected a number with a unit, like 30s, 5m or 1h
  --> playbook.yml:5:14
  |
5 |     timeout: soon
  |              ^
"
    );
}

#[test]
fn undefined_template_variable() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(
        dir.path(),
        "name: x\nhosts: web\nvars:\n  release: v2\nsteps:\n  - run: echo {{ relase }}\n",
        &[],
    );

    assert_refused(&run, &fake, "playbook.yml:6:18");
    assert_eq!(
        run.stderr(),
        "\
error: undefined variable `relase` in run of steps[0] on host target
  --> playbook.yml:6:18
  |
6 |   - run: echo {{ relase }}
  |                  ^
"
    );
}

#[test]
fn unknown_group_in_limit() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &["--limit", "dbservers"]);

    assert_refused(&run, &fake, "--limit:1:1");
    assert!(run.stderr().contains("`dbservers`"), "{run}");
}

#[test]
fn reversed_host_range_in_the_inventory() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "web[10:01]");

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &[]);

    assert_refused(&run, &fake, "inventory.yml:5:12");
    assert!(run.stderr().contains("[10:01]"), "{run}");
}

#[test]
fn batch_of_zero_hosts() {
    let fake = FakeHost::new();
    let dir = workspace(&fake, "target");

    let run = run_in(dir.path(), GOOD_PLAYBOOK, &["--batch", "0"]);

    run.assert_code(2);
    assert!(run.stderr().contains("--batch 0"), "{run}");
    assert_eq!(fake.connections(), 0, "{run}");
}
