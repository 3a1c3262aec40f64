//! A health check URL herd cannot use (`https://`, a bad port, no host) is
//! bad input: exit 2 naming where it is written, before any host is
//! contacted. "Not contacted" is measured: the inventory's only host is a
//! TCP listener this test holds, and it must see no connection.

mod common;

use std::path::Path;

use common::{assert_refused_exactly, write_file, FakeHost, Herd};

/// A directory with `inventory.yml`: host `web1` (group `web`) is `host`.
fn workspace(host: &FakeHost) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let port = host.port();
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
    let host = FakeHost::new();
    let dir = workspace(&host);
    write_file(dir.path(), "playbook.yml", HTTPS_PLAYBOOK);

    let run = herd_in(dir.path(), "run").arg("playbook.yml").run();

    assert_refused_exactly(
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
    let host = FakeHost::new();
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
    let host = FakeHost::new();
    let dir = workspace(&host);

    let run = herd_in(dir.path(), "reload")
        .args(["--pidfile", "/srv/app/gunicorn.pid", "--http"])
        .arg("https://127.0.0.1:{{ http_port }}/healthz")
        .run();

    assert_refused_exactly(
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
