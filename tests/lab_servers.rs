//! `herd lab up --servers`: hosts running uWSGI, Unicorn, Puma and nginx
//! beside Gunicorn. Each serves the release `current` points to once its
//! server reloads, each comes back from its start script run over SSH (what a
//! playbook's `reload.start` does), and a broken release is broken for the
//! host's own server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    alive, healthz, one_at_a_time, read_pid, switch_release, switch_to_broken_release, wait_until,
    Herd, Lab, LabHost,
};

const ALL: [&str; 5] = ["gunicorn", "uwsgi", "unicorn", "puma", "nginx"];

#[test]
fn an_unknown_server_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = Herd::new()
        .args([
            "lab",
            "up",
            "--hosts",
            "2",
            "--servers",
            "gunicorn,apache",
            "--dir",
        ])
        .arg(dir.path())
        .run();
    run.assert_code(2);
    assert!(
        run.stderr().contains(
            "invalid value 'apache' for '--servers <NAMES>': unknown app server `apache`: choose from gunicorn, uwsgi, unicorn, puma, nginx"
        ),
        "{run}"
    );
    assert!(!dir.path().join("lab.json").exists());
}

/// The signal that makes each server serve a new release without a new
/// master: HUP, except Puma, whose HUP only reopens logs (USR1: phased).
fn reload_signal(host: &LabHost) -> libc::c_int {
    match host.server.as_str() {
        "puma" => libc::SIGUSR1,
        _ => libc::SIGHUP,
    }
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) of a master this test's lab started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
}

#[test]
fn every_server_serves_the_new_release_after_its_reload_and_starts_again_from_its_script() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_servers(5, &ALL);
    let servers: Vec<&str> = lab.hosts().iter().map(|h| h.server.as_str()).collect();
    assert_eq!(servers, ALL);
    for host in lab.hosts() {
        assert_eq!(healthz(host), "ok v1", "{}", host.name);
        switch_release(&lab, host, "v2");
        let master = read_pid(&host.pidfile).unwrap();
        signal(master, reload_signal(host));
    }
    for host in lab.hosts() {
        assert!(
            wait_until(Duration::from_secs(15), || healthz(host) == "ok v2"),
            "{} ({}) still answers {:?}",
            host.name,
            host.server,
            healthz(host)
        );
        assert_eq!(read_pid(&host.pidfile), host.gunicorn_pid, "{}", host.name);
    }

    // Stopped, then started by its script over SSH as the login user.
    for host in lab.hosts() {
        let master = read_pid(&host.pidfile).unwrap();
        signal(master, libc::SIGTERM);
        assert!(
            wait_until(Duration::from_secs(10), || !alive(master)),
            "{}'s master {master} did not stop",
            host.name
        );
        let start = host.app_dir.join(format!("start-{}.sh", host.server));
        let run = lab.ssh_as(lab.user(), &host.name, &start.to_string_lossy());
        assert!(run.status.success(), "{}: {run:?}", host.name);
        assert!(
            wait_until(Duration::from_secs(15), || healthz(host) == "ok v2"),
            "{} ({}) after its start script: {:?}",
            host.name,
            host.server,
            healthz(host)
        );
        let new_master = read_pid(&host.pidfile).unwrap();
        assert!(alive(new_master) && new_master != master, "{}", host.name);
    }
}

#[test]
fn a_broken_release_is_broken_for_each_servers_own_check() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_servers(5, &ALL);
    for host in lab.hosts() {
        switch_to_broken_release(&lab, host, "v2");
    }
    let current = |host: &LabHost| host.app_dir.join("current");
    // Python: importing app.py raises.
    for host in &lab.hosts()[..2] {
        let run = Command::new("python3")
            .arg(current(host).join("app.py"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{}", host.name);
        assert!(stderr.contains("RuntimeError: broken release"), "{stderr}");
    }
    // Rack: loading config.ru raises.
    for host in &lab.hosts()[2..4] {
        let run = Command::new("ruby")
            .args(["-rrack", "-e", "Rack::Builder.parse_file(ARGV[0])"])
            .arg(current(host).join("config.ru"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{}", host.name);
        assert!(stderr.contains("broken release (RuntimeError)"), "{stderr}");
    }
    // nginx: its own config test fails, as the login user, on release.conf.
    let nginx = &lab.hosts()[4];
    let conf = nginx.app_dir.join("nginx.conf");
    let command = format!(
        "/usr/sbin/nginx -t -c {} -p {}/",
        conf.display(),
        nginx.app_dir.display()
    );
    let run = lab.ssh_as(lab.user(), &nginx.name, &command);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unexpected end of file, expecting \";\" or \"}\""),
        "{stderr}"
    );
    assert!(stderr.contains("test failed"), "{stderr}");
    // And every server still serves v1: nothing was reloaded.
    for host in lab.hosts() {
        assert_eq!(healthz(host), "ok v1", "{}", host.name);
    }
}
