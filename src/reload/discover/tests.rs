use super::*;
use crate::reload::snapshot::fixtures::{bystanders, stat};
use crate::reload::snapshot::parse;

/// A host with a shell, an unrelated python, and Gunicorn masters as given.
fn host(lines: &[String]) -> Snapshot {
    let mut text = String::from("--herd procs\n");
    text.push_str(&bystanders());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    parse(&text)
}

/// A master with setproctitle titles, and two workers.
fn titled(master: u32, name: &str) -> Vec<String> {
    vec![
        stat(
            master,
            "gunicorn",
            'S',
            1,
            1000,
            &format!("gunicorn: master [{name}]"),
        ),
        stat(
            master + 1,
            "gunicorn",
            'S',
            master,
            1010,
            &format!("gunicorn: worker [{name}]"),
        ),
        stat(
            master + 2,
            "gunicorn",
            'S',
            master,
            1011,
            &format!("gunicorn: worker [{name}]"),
        ),
    ]
}

/// A master without setproctitle: every process shows the same command line.
fn untitled(master: u32, name: &str) -> Vec<String> {
    let cmd = format!(
        "/srv/venv/bin/python3 /srv/venv/bin/gunicorn --name {name} --workers 2 app:application"
    );
    vec![
        stat(master, "gunicorn", 'S', 1, 2000, &cmd),
        stat(master + 1, "gunicorn", 'S', master, 2010, &cmd),
        stat(master + 2, "gunicorn", 'S', master, 2011, &cmd),
    ]
}

#[test]
fn auto_finds_the_one_titled_master_and_its_workers() {
    let snapshot = host(&titled(500, "app"));
    let master = discover(&snapshot, &Strategy::Auto, &OutputMask::default()).unwrap();
    assert_eq!((master.pid, master.start_time), (500, 1000));
    assert_eq!(master.workers, vec![501, 502]);
}

#[test]
fn without_setproctitle_the_master_is_the_gunicorn_whose_parent_is_not() {
    let snapshot = host(&untitled(700, "app"));
    let master = discover(&snapshot, &Strategy::Auto, &OutputMask::default()).unwrap();
    assert_eq!(master.pid, 700);
    assert_eq!(master.workers, vec![701, 702]);
}

#[test]
fn two_masters_are_refused_and_listed_and_name_picks_one() {
    let mut lines = titled(500, "blue");
    lines.extend(untitled(700, "green"));
    let snapshot = host(&lines);
    let error = discover(&snapshot, &Strategy::Auto, &OutputMask::default()).unwrap_err();
    let DiscoveryError::Ambiguous { count, list } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*count, 2);
    assert!(
        list.contains("pid 500") && list.contains("pid 700"),
        "{list}"
    );
    assert_eq!(
        discover(
            &snapshot,
            &Strategy::Name("blue".into()),
            &OutputMask::default()
        )
        .unwrap()
        .pid,
        500
    );
    assert_eq!(
        discover(
            &snapshot,
            &Strategy::Name("green".into()),
            &OutputMask::default()
        )
        .unwrap()
        .pid,
        700
    );
    assert!(matches!(
        discover(
            &snapshot,
            &Strategy::Name("red".into()),
            &OutputMask::default()
        ),
        Err(DiscoveryError::NotRunning(_))
    ));
}

#[test]
fn a_stale_pidfile_naming_an_unrelated_process_is_refused() {
    let mut snapshot = host(&titled(500, "app"));
    snapshot.pidfile = Some("300".into());
    let error = discover(
        &snapshot,
        &Strategy::Pidfile("/run/app.pid".into()),
        &OutputMask::default(),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the pidfile /run/app.pid names pid 300, which is not Gunicorn but `/usr/bin/python3 /opt/monitor.py`: a stale pidfile; that process was not signalled"
    );
}

#[test]
fn a_pidfile_naming_a_worker_or_a_dead_pid_is_refused() {
    let mut snapshot = host(&titled(500, "app"));
    snapshot.pidfile = Some("501".into());
    let strategy = Strategy::Pidfile("/run/app.pid".into());
    assert!(matches!(
        discover(&snapshot, &strategy, &OutputMask::default()),
        Err(DiscoveryError::Worker { pid: 501, .. })
    ));
    snapshot.pidfile = Some("9999\n".into());
    assert!(matches!(
        discover(&snapshot, &strategy, &OutputMask::default()),
        Err(DiscoveryError::NotRunning(_))
    ));
    snapshot.pidfile = None;
    assert!(matches!(
        discover(&snapshot, &strategy, &OutputMask::default()),
        Err(DiscoveryError::NotRunning(_))
    ));
    snapshot.pidfile = Some("garbage".into());
    assert!(matches!(
        discover(&snapshot, &strategy, &OutputMask::default()),
        Err(DiscoveryError::BadPidfile { .. })
    ));
    snapshot.pidfile = Some("500".into());
    assert_eq!(
        discover(&snapshot, &strategy, &OutputMask::default())
            .unwrap()
            .pid,
        500
    );
}

#[test]
fn systemd_main_pid_zero_means_not_running() {
    let mut snapshot = host(&titled(500, "app"));
    let strategy = Strategy::Unit("app.service".into());
    snapshot.main_pid = Some("0".into());
    assert!(matches!(
        discover(&snapshot, &strategy, &OutputMask::default()),
        Err(DiscoveryError::NotRunning(_))
    ));
    snapshot.main_pid = Some("500".into());
    assert_eq!(
        discover(&snapshot, &strategy, &OutputMask::default())
            .unwrap()
            .pid,
        500
    );
}

#[test]
fn a_zombie_master_is_not_signalled() {
    let mut lines = titled(500, "app");
    lines[0] = stat(500, "gunicorn", 'Z', 1, 1000, "");
    let mut snapshot = host(&lines);
    snapshot.pidfile = Some("500".into());
    assert_eq!(
        discover(
            &snapshot,
            &Strategy::Pidfile("p".into()),
            &OutputMask::default()
        ),
        Err(DiscoveryError::Zombie { pid: 500 })
    );
}

#[test]
fn gunicorn_command_lines() {
    for gunicorn in [
        "gunicorn: master [app]",
        "gunicorn: worker [app]",
        "/srv/venv/bin/python3 /srv/venv/bin/gunicorn app:app",
        "/srv/venv/bin/python3.11 -u /srv/venv/bin/gunicorn app:app",
        "/usr/bin/python3 -W ignore /srv/venv/bin/gunicorn app:app",
        "python -m gunicorn app:app",
        "python3 -mgunicorn app:app",
        "pypy3 -m gunicorn app:app",
        "/usr/local/bin/gunicorn -w 4 app:app",
        "gunicorn --name api app:app",
    ] {
        assert!(is_gunicorn(gunicorn), "{gunicorn}");
    }
    for other in [
        "vim gunicorn.conf.py",
        "/usr/bin/python3 /opt/monitor.py",
        "python3 x.py /var/log/gunicorn",
        "/usr/bin/python3 -c import time; time.sleep(300) /var/log/gunicorn",
        "python3 -c gunicorn",
        "python3 -m http.server gunicorn",
        "journalctl -u gunicorn",
        "tail -f /var/log/gunicorn",
        "/usr/bin/gunicorn-watch gunicorn",
        "pythonista /srv/venv/bin/gunicorn",
        "python3",
        "",
    ] {
        assert!(!is_gunicorn(other), "{other}");
    }
}

/// Processes that name Gunicorn among their arguments but are not Gunicorn.
fn decoys() -> Vec<String> {
    vec![
        stat(
            900,
            "python3",
            'S',
            1,
            4000,
            "python3 x.py /var/log/gunicorn",
        ),
        stat(910, "journalctl", 'S', 1, 4100, "journalctl -u gunicorn"),
    ]
}

#[test]
fn a_pidfile_naming_a_process_that_only_mentions_gunicorn_is_refused() {
    let mut lines = titled(500, "app");
    lines.extend(decoys());
    let mut snapshot = host(&lines);
    for (pid, cmdline) in [
        (900, "python3 x.py /var/log/gunicorn"),
        (910, "journalctl -u gunicorn"),
    ] {
        snapshot.pidfile = Some(pid.to_string());
        let error = discover(
            &snapshot,
            &Strategy::Pidfile("/run/app.pid".into()),
            &OutputMask::default(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("the pidfile /run/app.pid names pid {pid}, which is not Gunicorn but `{cmdline}`: a stale pidfile; that process was not signalled")
        );
    }
}

#[test]
fn auto_and_name_never_count_a_decoy_as_a_master() {
    let mut lines = titled(500, "app");
    lines.extend(decoys());
    let snapshot = host(&lines);
    assert_eq!(
        discover(&snapshot, &Strategy::Auto, &OutputMask::default())
            .unwrap()
            .pid,
        500
    );
    let mut untitled_lines = untitled(700, "app");
    untitled_lines.extend(decoys());
    let snapshot = host(&untitled_lines);
    assert_eq!(
        discover(&snapshot, &Strategy::Auto, &OutputMask::default())
            .unwrap()
            .pid,
        700
    );
    assert_eq!(
        discover(
            &snapshot,
            &Strategy::Name("app".into()),
            &OutputMask::default()
        )
        .unwrap()
        .pid,
        700
    );
}
