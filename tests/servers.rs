//! uWSGI, Unicorn, Puma and nginx, each for real: a lab host per server
//! (real sshd, the real server from Debian's packages), a release rolled
//! onto it and its reload proven on the processes themselves; a broken
//! release rolled back with the server serving again; and each server's
//! trap refused before anything is signalled.

mod common;

use std::fs;
use std::time::Duration;

use common::load::under_load;
use common::master::{assert_untouched, assert_workers_replaced, generation};
use common::{alive, healthz, one_at_a_time, read_pid, wait_until, Herd, Lab, LabHost};

/// A release: the current one's files, saying `release` (app.py and
/// config.ru read RELEASE when they load; nginx reads release.conf).
const DEPLOY: &str = r#"name: Deploy
hosts: web
rolling: { batch: 1, max_fail: 0 }
release: { path: "{{ app_dir }}", id: "{{ release }}", keep: 3 }
steps:
  - run: cp ../../current/app.py ../../current/config.ru . && printf '%s\n' {{ release }} > RELEASE && printf 'set $release %s;\n' {{ release }} > release.conf
reload:
  server: "{{ app_server }}"
  pidfile: "{{ app_pidfile }}"
  preflight: "{{ app_preflight | raw }}"
  start: "{{ app_start }}"
  signal: "{{ signal | default('') }}"
  preload: "{{ preload | default(app_preload) }}"
validate: { timeout: 20s, http: { url: "http://{{ ansible_host }}:{{ http_port }}/healthz", contains: "{{ release }}" } }
"#;

/// A release that no server can load: app.py and config.ru raise, and
/// release.conf is not nginx syntax. Each server reads only its own file.
const BROKEN: &str = r#"name: Deploy a broken release
hosts: web
rolling: { batch: 1, max_fail: 0 }
release: { path: "{{ app_dir }}", id: "{{ release }}", keep: 3 }
steps:
  - run: printf 'raise RuntimeError("broken release")\n' > app.py && printf 'raise "broken release"\n' > config.ru && printf 'set $release\n' > release.conf && printf '%s\n' {{ release }} > RELEASE
reload:
  server: "{{ app_server }}"
  pidfile: "{{ app_pidfile }}"
  preflight: "{{ app_preflight | raw }}"
  start: "{{ app_start }}"
  preload: "{{ app_preload }}"
validate: { timeout: 15s, http: { url: "http://{{ ansible_host }}:{{ http_port }}/healthz", contains: "{{ release }}" } }
"#;

fn run(lab: &Lab, playbook: &str, extra: &[&str]) -> common::Run {
    let path = lab.write("playbook.yml", playbook);
    Herd::new()
        .arg("run")
        .arg(&path)
        .arg("-i")
        .arg(lab.inventory())
        .args(extra)
        .run()
}

/// Rolls v2 onto two hosts of `server` and checks each kept its master,
/// replaced every worker and serves v2.
fn rolls_a_release(server: &str) {
    let _one = one_at_a_time();
    let lab = Lab::up_with_servers(2, &[server, server]);
    let before: Vec<_> = lab.hosts().iter().map(generation).collect();
    let run = run(&lab, DEPLOY, &["-e", "release=v2"]);
    run.assert_code(0);
    for (host, before) in lab.hosts().iter().zip(&before) {
        assert_workers_replaced(host, before, &run);
        assert_eq!(healthz(host), "ok v2", "{}\n{run}", host.name);
    }
}

#[test]
fn uwsgi_rolls_a_release_same_master_new_workers() {
    rolls_a_release("uwsgi");
}

#[test]
fn unicorn_rolls_a_release_same_master_new_workers() {
    rolls_a_release("unicorn");
}

#[test]
fn puma_rolls_a_release_with_a_phased_restart() {
    rolls_a_release("puma");
}

#[test]
fn nginx_rolls_a_new_configuration_same_master_new_workers() {
    rolls_a_release("nginx");
}

/// A broken release on `server`: the run fails, `current` goes back, the
/// server serves v1 again (restored by a signal, or started anew where the
/// master exited), and the host is reported rolled back.
fn rolls_back_a_broken_release(server: &str, why: &str) {
    let _one = one_at_a_time();
    let lab = Lab::up_with_servers(1, &[server]);
    let host = &lab.hosts()[0];
    let run = run(&lab, BROKEN, &["-e", "release=v2"]);
    run.assert_code(1);
    assert!(run.stderr().contains(why), "expected `{why}`:\n{run}");
    assert!(
        run.summary_result(&host.name).contains("rolled back"),
        "{}",
        run.summary_row(&host.name)
    );
    let current = fs::read_link(host.app_dir.join("current")).unwrap();
    assert!(current.ends_with("v1"), "current -> {current:?}\n{run}");
    assert!(
        wait_until(Duration::from_secs(10), || healthz(host) == "ok v1"),
        "{} serves `{}` after the rollback\n{run}",
        host.name,
        healthz(host)
    );
    let master = read_pid(&host.pidfile).expect("a pidfile after the rollback");
    assert!(alive(master), "master {master}\n{run}");
}

#[test]
fn uwsgi_whose_release_fails_to_import_is_started_again_on_the_old_one() {
    // `need-app`: the master exits when the app does not load.
    rolls_back_a_broken_release("uwsgi", "exited after HUP");
}

#[test]
fn unicorn_workers_that_crash_loop_on_a_broken_release_fail_it() {
    rolls_back_a_broken_release("unicorn", "proof `workers`");
}

#[test]
fn puma_whose_phased_restart_cannot_boot_a_worker_is_rolled_back() {
    // The phased restart stops at the first new worker, which crash-loops;
    // the other old worker keeps serving the old release.
    rolls_back_a_broken_release(
        "puma",
        "proof `workers` failed: workers not replaced within 15s: old workers",
    );
}

#[test]
fn nginx_refuses_a_broken_configuration_before_hup() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_servers(1, &["nginx"]);
    let host = &lab.hosts()[0];
    let before = generation(host);
    let run = run(&lab, BROKEN, &["-e", "release=v2"]);
    run.assert_code(1);
    assert!(
        run.stderr()
            .contains("preflight failed (exit code 1), nothing was signalled")
            && run.stderr().contains("release.conf"),
        "{run}"
    );
    // nginx -t caught it: the master and its workers were never signalled.
    assert_untouched(host, &before, &run);
    assert_eq!(healthz(host), "ok v1");
}

#[test]
fn refused_signals_name_the_one_to_use_and_no_host_is_contacted() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_servers(2, &["puma", "uwsgi"]);
    for (host, signal, said) in [
        ("host01", "HUP", "HUP to Puma is refused: Puma only reopens its log files on HUP, and without `stdout_redirect` it stops as on INT; use USR1 (phased restart) or USR2 (hot restart)"),
        ("host02", "TERM", "TERM to uWSGI is refused: uWSGI takes TERM as a brutal reload that kills workers mid-request, or with `die-on-term` as a stop; use HUP"),
    ] {
        let run = run(&lab, DEPLOY, &["-e", "release=v2", "-e", &format!("signal={signal}"), "-l", host]);
        run.assert_code(2);
        assert!(run.stderr().contains(said), "{run}");
        assert!(run.stderr().contains(&format!("(reload.signal on host {host})")), "{run}");
        assert!(lab.hosts_with_lock_file().is_empty(), "a host was contacted\n{run}");
    }
    for host in lab.hosts() {
        assert_eq!(healthz(host), "ok v1");
    }
}

/// Writes the server's config with preloading on, as an operator would.
fn preload(host: &LabHost, server: &str) {
    let (file, line) = match server {
        "unicorn" => ("unicorn.rb", "preload_app true\n"),
        _ => ("config/puma.rb", "preload_app!\n"),
    };
    let path = host.app_dir.join(file);
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str(line);
    fs::write(&path, text).unwrap();
}

#[test]
fn a_preloading_unicorn_is_refused_hup_and_upgraded_with_usr2_and_quit() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_servers(1, &["unicorn"]);
    let host = &lab.hosts()[0];
    preload(host, "unicorn");
    let before = generation(host);
    let refused = run(&lab, DEPLOY, &["-e", "release=v2"]);
    refused.assert_code(1);
    assert!(
        refused.stderr().contains("HUP to Unicorn is refused: with `preload_app true` the master keeps the code it loaded, so new workers run the old release; use USR2"),
        "{refused}"
    );
    assert!(
        refused.stderr().contains("turns preloading on"),
        "{refused}"
    );
    assert_untouched(host, &before, &refused);

    let upgraded = run(
        &lab,
        DEPLOY,
        &["-e", "release=v3", "-e", "signal=USR2", "--output", "json"],
    );
    upgraded.assert_code(0);
    // A new master serves v3; the old one got QUIT and is gone with its workers.
    let new = read_pid(&host.pidfile).expect("the new master's pidfile");
    assert_ne!(new, before.master.pid, "{upgraded}");
    assert!(!alive(before.master.pid), "old master\n{upgraded}");
    assert!(before.workers.iter().all(|w| !alive(*w)), "{upgraded}");
    assert!(
        !host.pidfile.with_extension("pid.oldbin").exists(),
        "{upgraded}"
    );
    assert_eq!(healthz(host), "ok v3");
    // USR2 to the old master, then QUIT (not TERM) to it once the new one served.
    let sent: Vec<String> = upgraded
        .json_events()
        .iter()
        .filter(|e| e["event"] == "reload_finished")
        .filter_map(|e| e["signals"].as_array().cloned())
        .flatten()
        .map(|s| format!("{} {}", s["signal"].as_str().unwrap_or("?"), s["pid"]))
        .collect();
    let old = before.master.pid;
    assert_eq!(
        sent,
        vec![format!("USR2 {old}"), format!("QUIT {old}")],
        "{upgraded}"
    );
}

#[test]
fn a_preloading_puma_is_refused_usr1_and_hot_restarted_with_usr2() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_servers(1, &["puma"]);
    let host = &lab.hosts()[0];
    preload(host, "puma");
    let before = generation(host);
    // Puma's title hides its command line; herd reads the config where
    // Puma looks by default, in the master's working directory, when the
    // playbook does not say (the lab's inventory does: `preload=` unsays it).
    let refused = run(&lab, DEPLOY, &["-e", "release=v2", "-e", "preload="]);
    refused.assert_code(1);
    assert!(
        refused.stderr().contains("USR1 to Puma is refused: Puma turns a phased restart of a preloaded app into a hot restart of every worker at once; use USR2 (hot restart)"),
        "{refused}"
    );
    assert!(
        refused
            .stderr()
            .contains("its config file config/puma.rb turns preloading on"),
        "{refused}"
    );
    assert_untouched(host, &before, &refused);
    // Hot restart: the master re-executes itself in place.
    let restarted = run(&lab, DEPLOY, &["-e", "release=v3", "-e", "signal=USR2"]);
    restarted.assert_code(0);
    assert_workers_replaced(host, &before, &restarted);
    assert_eq!(healthz(host), "ok v3");
    // The reload line names the signal the master got.
    let master = before.master.pid;
    assert!(
        restarted.stderr().lines().any(|l| l.starts_with(&format!(
            "{}: reload: ok (master {master}, workers ",
            host.name
        )) && l.ends_with(&format!(", USR2 to {master})"))),
        "{restarted}"
    );
}

/// Zero downtime across every server herd knows: one rolling reload, one
/// host per server, under steady load, not one request failed.
#[test]
fn a_rolling_reload_across_all_five_servers_fails_no_request() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_servers(5, &["gunicorn", "uwsgi", "unicorn", "puma", "nginx"]);
    for host in lab.hosts() {
        common::switch_release(&lab, host, "v2");
    }
    let playbook = lab.write(
        "reload.yml",
        r#"name: Reload every server
hosts: web
rolling: { batch: 1, max_fail: 0 }
reload: { server: "{{ app_server }}", pidfile: "{{ app_pidfile }}", preflight: "{{ app_preflight | raw }}", preload: "{{ app_preload }}" }
validate: { timeout: 30s, http: { url: "http://{{ ansible_host }}:{{ http_port }}/healthz", contains: v2 } }
"#,
    );
    let before: Vec<_> = lab.hosts().iter().map(generation).collect();
    let herd = Herd::new()
        .arg("run")
        .arg(&playbook)
        .arg("-i")
        .arg(lab.inventory());
    let run = under_load(&lab, herd);
    for (host, before) in lab.hosts().iter().zip(&before) {
        assert_workers_replaced(host, before, &run);
    }
}

/// `herd check --server` and `herd reload --server` without a playbook,
/// on each server: check finds the master and its workers, reload proves it.
#[test]
fn check_and_reload_take_every_server_by_flag() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_servers(4, &["uwsgi", "unicorn", "puma", "nginx"]);
    for host in lab.hosts() {
        let server = host.server.as_str();
        let before = generation(host);
        let check = Herd::new()
            .args(["check", "--server", server, "-l", &host.name, "-i"])
            .arg(lab.inventory())
            .arg("--pidfile")
            .arg(&host.pidfile)
            .run();
        check.assert_code(0);
        assert!(
            check.stdout().contains(&format!(
                "{} (pidfile {}, 2 workers",
                before.master.pid,
                host.pidfile.display()
            )),
            "{check}"
        );
        common::switch_release(&lab, host, "v2");
        let mut reload = Herd::new()
            .args(["reload", "--server", server, "-l", &host.name, "-i"])
            .arg(lab.inventory())
            .arg("--pidfile")
            .arg(&host.pidfile)
            .arg("--http")
            .arg(format!(
                "http://{}:{}/healthz",
                host.address, host.http_port
            ))
            .args(["--contains", "v2"]);
        if server == "puma" {
            reload = reload.arg("--no-preload");
        }
        let reload = reload.run();
        reload.assert_code(0);
        assert_workers_replaced(host, &before, &reload);
        assert_eq!(healthz(host), "ok v2", "{reload}");
    }
}

/// A process that merely titles itself like an nginx master, named by the
/// pidfile: herd's own `nginx -t` runs the master's real program only, so
/// the program its title names is never run.
#[test]
fn a_forged_nginx_title_gets_no_program_of_its_naming_run() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_servers(1, &["nginx"]);
    let evil_dir = tempfile::tempdir().unwrap();
    let marker = evil_dir.path().join("ran");
    let evil = evil_dir.path().join("nginx");
    fs::write(&evil, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    fs::set_permissions(&evil, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let title = format!(
        "nginx: master process {} -c /etc/nginx/nginx.conf",
        evil.display()
    );
    // With a "worker" of its own: a master without workers is refused
    // before any preflight.
    let mut fake = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "(exec -a 'nginx: worker process' sleep 30) & exec -a '{title}' cat"
        ))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pidfile = evil_dir.path().join("nginx.pid");
    fs::write(&pidfile, format!("{}\n", fake.id())).unwrap();
    assert!(wait_until(Duration::from_secs(5), || common::cmdline(
        fake.id()
    )
    .starts_with("nginx: master")
        && common::children(fake.id()).len() == 1));
    let worker = common::children(fake.id())[0];
    let run = Herd::new()
        .args(["reload", "--server", "nginx", "-i"])
        .arg(lab.inventory())
        .arg("--pidfile")
        .arg(&pidfile)
        .run();
    // SAFETY: a plain kill(2) of the "worker" this test started.
    unsafe { libc::kill(worker as libc::pid_t, libc::SIGKILL) };
    fake.kill().unwrap();
    fake.wait().unwrap();
    run.assert_code(1);
    assert!(
        !marker.exists(),
        "the program the title names was run\n{run}"
    );
    assert!(
        run.stderr()
            .contains("preflight failed (exit code 97), nothing was signalled: herd: "),
        "{run}"
    );
}

/// A Unicorn upgrade left half-done (USR2 sent, the old master never
/// ended): both masters serve, and herd refuses to signal either.
#[test]
fn a_half_done_unicorn_upgrade_is_refused_not_signalled() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_servers(1, &["unicorn"]);
    let host = &lab.hosts()[0];
    let old = generation(host);
    // SAFETY: kill with a pid the lab recorded; no memory is involved.
    unsafe { libc::kill(old.master.pid as i32, libc::SIGUSR2) };
    let oldbin = host.app_dir.join("unicorn.pid.oldbin");
    assert!(
        wait_until(Duration::from_secs(20), || read_pid(&host.pidfile)
            .is_some_and(
                |new| new != old.master.pid && common::children(new).len() == 2
            )),
        "no new master came up"
    );
    assert!(oldbin.exists());
    let new = generation(host);
    let run = Herd::new()
        .args(["reload", "--server", "unicorn", "--no-preload", "-i"])
        .arg(lab.inventory())
        .arg("--pidfile")
        .arg(&host.pidfile)
        .run();
    run.assert_code(1);
    assert!(
        run.stderr().contains(&format!(
            "Unicorn master {} has a master of its own as its parent {}: an upgrade (USR2) was left half-done",
            new.master.pid, old.master.pid
        )),
        "{run}"
    );
    assert_untouched(host, &new, &run);
    assert!(alive(old.master.pid));
    // Finish it as the message says: QUIT to the old master.
    unsafe { libc::kill(old.master.pid as i32, libc::SIGQUIT) };
    assert!(wait_until(Duration::from_secs(20), || !alive(
        old.master.pid
    )));
}

/// `herd plan` says, per host, which signal its server gets and what will
/// be proven, without contacting any host.
#[test]
fn plan_shows_each_hosts_signal_and_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = common::write_file(
        dir.path(),
        "inventory.yml",
        "all:\n  hosts:\n    u1: { ansible_host: 127.0.0.9, app_server: unicorn }\n    p1: { ansible_host: 127.0.0.9, app_server: puma }\n    n1: { ansible_host: 127.0.0.9, app_server: nginx }\n    w1: { ansible_host: 127.0.0.9, app_server: uwsgi }\n",
    );
    let playbook = common::write_file(
        dir.path(),
        "playbook.yml",
        "name: plan\nhosts: all\nreload: { server: \"{{ app_server }}\", pidfile: /srv/app.pid }\nvalidate: { http: { url: \"http://127.0.0.1:8000/healthz\" } }\n",
    );
    let run = Herd::new()
        .arg("plan")
        .arg(&playbook)
        .arg("-i")
        .arg(&inventory)
        .run();
    run.assert_code(0);
    let out = run.stdout();
    for expected in [
        "    reload: kill -HUP to the Unicorn master (pidfile /srv/app.pid)",
        "    signal: HUP (graceful reload of the config and config.ru, every worker replaced); refused if the master preloads the app (use USR2 (a new master, then QUIT to the old one) then), read from its command line and config file before the signal",
        "new workers unchanged for the settle period (no boot proof)",
        "    reload: kill -USR1 to the Puma master (pidfile /srv/app.pid)",
        "    booted: once each new worker started its `puma srv` thread (after loading the app) (then settle 0s)",
        "`nginx -t -q` passes (with the master's -c, -p, -e), same master (pid and start time), every worker replaced",
        "    signal: HUP (graceful reload; the master re-executes itself in place)",
        "    booted: once each new worker entered its event loop (holds an epoll instance) (then settle 0s)",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}
