//! A health check URL herd cannot use (`https://`, a bad port, no host) is
//! bad input: exit 2 naming where it is written, before any host is
//! contacted. "Not contacted" is measured: the inventory's only host is a
//! TCP listener this test holds, and it must see no connection.

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{write_file, Herd, Run};

/// A listener standing in for the inventory's host: counts who connects.
struct Listener(TcpListener);

impl Listener {
    fn new() -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Listener(listener)
    }

    /// Connections accepted within a short poll (herd has exited by then).
    fn connections(&self) -> usize {
        let mut count = 0;
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            match self.0.accept() {
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

/// A directory with `inventory.yml`: host `web1` (group `web`) is `host`.
fn workspace(host: &Listener) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let port = host.0.local_addr().unwrap().port();
    write_file(
        dir.path(),
        "inventory.yml",
        &format!(
            "all:\n  children:\n    web:\n      hosts:\n        web1: {{ ansible_host: 127.0.0.1, ansible_port: {port}, http_port: 8000 }}\n"
        ),
    );
    dir
}

/// `herd SUBCOMMAND -i inventory.yml` in `dir`.
fn herd_in(dir: &Path, subcommand: &str) -> Herd {
    Herd::new().current_dir(dir).args([
        subcommand,
        "-i",
        "inventory.yml",
        "--connect-timeout",
        "1s",
    ])
}

/// Exit 2 with exactly `stderr`, and nothing contacted.
fn assert_refused(run: &Run, host: &Listener, stderr: &str) {
    run.assert_code(2);
    assert_eq!(run.stderr(), stderr, "{run}");
    assert_eq!(run.stdout(), "", "{run}");
    assert_eq!(host.connections(), 0, "herd contacted the host\n{run}");
}

const HTTPS_PLAYBOOK: &str = "\
name: x
hosts: web
steps:
  - run: echo hi
reload:
  pidfile: /srv/app/gunicorn.pid
validate:
  http: { url: \"https://127.0.0.1:{{ http_port }}/healthz\", contains: v2 }
";

#[test]
fn an_https_url_in_a_playbook_is_refused_at_its_place() {
    let host = Listener::new();
    let dir = workspace(&host);
    write_file(dir.path(), "playbook.yml", HTTPS_PLAYBOOK);

    let run = herd_in(dir.path(), "run").arg("playbook.yml").run();

    assert_refused(
        &run,
        &host,
        "\
error: `https://127.0.0.1:8000/healthz` is an https:// URL, but the health check speaks plain HTTP to the app server through the SSH connection: use http:// and the address the app server listens on (validate.http.url on host web1)
  --> playbook.yml:8:17
  |
8 |   http: { url: \"https://127.0.0.1:{{ http_port }}/healthz\", contains: v2 }
  |                 ^
",
    );
}

#[test]
fn a_url_with_a_bad_port_in_a_playbook_is_refused() {
    let host = Listener::new();
    let dir = workspace(&host);
    let playbook = HTTPS_PLAYBOOK.replace(
        "https://127.0.0.1:{{ http_port }}",
        "http://127.0.0.1:80000",
    );
    write_file(dir.path(), "playbook.yml", &playbook);

    let run = herd_in(dir.path(), "run").arg("playbook.yml").run();

    run.assert_code(2);
    assert!(
        run.stderr().starts_with(
            "error: `http://127.0.0.1:80000/healthz`: bad port `80000` (validate.http.url on host web1)\n  --> playbook.yml:8:17\n"
        ),
        "{run}"
    );
    assert_eq!(host.connections(), 0, "{run}");
}

#[test]
fn an_https_url_given_to_herd_reload_is_refused() {
    let host = Listener::new();
    let dir = workspace(&host);

    let run = herd_in(dir.path(), "reload")
        .args(["--pidfile", "/srv/app/gunicorn.pid", "--http"])
        .arg("https://127.0.0.1:{{ http_port }}/healthz")
        .run();

    assert_refused(
        &run,
        &host,
        "\
error: `https://127.0.0.1:8000/healthz` is an https:// URL, but the health check speaks plain HTTP to the app server through the SSH connection: use http:// and the address the app server listens on (on host web1)
  --> --http:1:1
  |
1 | https://127.0.0.1:{{ http_port }}/healthz
  | ^
",
    );
}
