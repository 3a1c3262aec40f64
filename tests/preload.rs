//! A Gunicorn app started with `--preload`: its workers fork from a master
//! that imported the app once, so HUP gives new workers running the old
//! code (herd must say so, from the health check), and USR2 (a new master
//! re-executed from disk) is what deploys the new release.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{
    alive, children, chown_to, healthz, proc_stat, read_pid, switch_release, wait_until, Herd, Lab,
    LabHost,
};

const PIDFILE: &str = "{{ gunicorn_pidfile }}";
const HEALTHZ: &str = "http://{{ ansible_host }}:{{ http_port }}/healthz";
const WORKERS: usize = 2;

/// Stops `host`'s Gunicorn and starts it again with `--preload`, as the lab's
/// user (through `herd exec`); returns the new master's pid once it serves.
fn restart_with_preload(lab: &Lab, host: &LabHost) -> u32 {
    let old = read_pid(&host.pidfile).expect("pidfile");
    // SAFETY: a plain kill(2) of the lab master this test's lab started.
    unsafe { libc::kill(old as libc::pid_t, libc::SIGTERM) };
    assert!(
        wait_until(Duration::from_secs(20), || !alive(old)
            && !host.pidfile.exists()),
        "the lab master {old} did not stop"
    );
    let script = fs::read_to_string(host.app_dir.join("start-gunicorn.sh")).unwrap();
    assert!(script.contains(" --daemon "), "{script}");
    let preload = host.app_dir.join("start-preload.sh");
    fs::write(
        &preload,
        script.replace(" --daemon ", " --daemon --preload "),
    )
    .unwrap();
    fs::set_permissions(&preload, fs::Permissions::from_mode(0o755)).unwrap();
    chown_to(lab.user(), &preload);
    let started = Herd::new()
        .args(["exec", "-i"])
        .arg(lab.inventory())
        .args(["-l", &host.name, "--"])
        .arg(&preload)
        .run();
    started.assert_code(0);
    let mut pid = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            pid = read_pid(&host.pidfile).filter(|p| *p != old && alive(*p));
            pid.is_some_and(|p| children(p).len() == WORKERS) && healthz(host) == "ok v1"
        }),
        "Gunicorn --preload did not come up: pid {pid:?}, healthz {}",
        healthz(host)
    );
    pid.unwrap()
}

#[test]
fn hup_does_not_deploy_a_preloaded_app_and_usr2_does() {
    let lab = Lab::up(1);
    let host = lab.host("host01");
    let master = restart_with_preload(&lab, host);
    let master_start = proc_stat(master).unwrap().start_time;
    let old_workers = children(master);
    switch_release(&lab, host, "v2");

    // HUP: new workers, forked from a master that still holds v1.
    let hup = lab
        .herd([
            "reload",
            "--pidfile",
            PIDFILE,
            "--signal",
            "HUP",
            "--http",
            HEALTHZ,
        ])
        .args(["--contains", "v2", "--validate-timeout", "20s"])
        .run();

    hup.assert_code(1);
    assert!(
        hup.stderr()
            .lines()
            .any(|l| l.starts_with("host01: reload FAILED: proof `http`: ")
                && l.contains("does not contain `v2`")),
        "{hup}"
    );
    assert_eq!(
        proc_stat(master).map(|p| (p.start_time, p.state != 'Z')),
        Some((master_start, true)),
        "the master was replaced by HUP\n{hup}"
    );
    let hup_workers = children(master);
    assert_eq!(hup_workers.len(), WORKERS, "{hup}");
    for worker in &old_workers {
        assert!(!alive(*worker), "worker {worker} survived the HUP\n{hup}");
    }
    assert_eq!(
        healthz(host),
        "ok v1",
        "HUP deployed a preloaded app?\n{hup}"
    );

    // USR2: a new master executed from disk imports v2; the old one ends.
    let usr2 = lab
        .herd([
            "reload",
            "--pidfile",
            PIDFILE,
            "--signal",
            "USR2",
            "--http",
            HEALTHZ,
        ])
        .args([
            "--contains",
            "v2",
            "--validate-timeout",
            "60s",
            "--output",
            "json",
        ])
        .run();

    usr2.assert_code(0);
    let pidfile_at_exit = read_pid(&host.pidfile);
    let events = usr2.json_events();
    let finished: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "reload_finished")
        .collect();
    assert_eq!(finished.len(), 1, "{usr2}");
    assert_eq!(finished[0]["ok"], true, "{usr2}");
    assert_eq!(finished[0]["master_pid"], master, "{usr2}");
    let new_master = finished[0]["new_master_pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no new_master_pid\n{usr2}")) as u32;
    assert_ne!(new_master, master, "{usr2}");
    assert!(
        alive(new_master),
        "the new master {new_master} is gone\n{usr2}"
    );
    assert_eq!(
        proc_stat(master).filter(|p| p.state != 'Z'),
        None,
        "the old master {master} is still alive\n{usr2}"
    );
    for worker in &hup_workers {
        assert!(!alive(*worker), "old worker {worker} still alive\n{usr2}");
    }
    let workers = children(new_master);
    assert_eq!(
        workers.len(),
        WORKERS,
        "new master's workers {workers:?}\n{usr2}"
    );
    assert_eq!(
        finished[0]["new_workers"],
        serde_json::json!(workers),
        "{usr2}"
    );
    assert_eq!(healthz(host), "ok v2", "{usr2}");
    // herd waits for the promotion (DESIGN: "TERM the old master, wait for
    // promotion"): when it says ok, the pidfile already names the new master,
    // so the next `herd reload --pidfile` finds it.
    let promoted_later = wait_until(Duration::from_secs(10), || {
        read_pid(&host.pidfile) == Some(new_master)
    });
    assert_eq!(
        pidfile_at_exit,
        Some(new_master),
        "when herd reported ok the pidfile named {pidfile_at_exit:?}, not the new master \
         {new_master} (it did {}within 10s after)\n{usr2}",
        if promoted_later { "" } else { "not even " }
    );
    assert!(
        !host.pidfile.with_extension("pid.2").exists(),
        "gunicorn.pid.2 left behind\n{usr2}"
    );
}
