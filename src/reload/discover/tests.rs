use super::*;
use crate::reload::container;
use crate::reload::server::GUNICORN;
use crate::reload::snapshot::fixtures::{bystanders, stat};
use crate::reload::snapshot::parse;

/// Discovery on the host itself, of Gunicorn.
fn discover(
    snapshot: &Snapshot,
    on_host: &OnHost<String>,
    mask: &OutputMask,
) -> Result<Master, DiscoveryError> {
    on_host_master(snapshot, &GUNICORN, on_host, mask)
}

/// Discovery through `app.service`, with systemd's answer `manager` (or
/// none: the cgroup marks alone).
fn through_unit(
    snapshot: &Snapshot,
    manager: Option<&str>,
    delivery: Delivery,
) -> Result<Found, DiscoveryError> {
    through_unit_or(snapshot, manager, delivery, OnHost::Only)
}

/// The same, with `fallback` where auto looks when the unit is not active.
fn through_unit_or(
    snapshot: &Snapshot,
    manager: Option<&str>,
    delivery: Delivery,
    fallback: OnHost<String>,
) -> Result<Found, DiscoveryError> {
    let mut snapshot = snapshot.clone();
    snapshot.manager = manager.map(str::to_string);
    super::discover(
        &snapshot,
        &GUNICORN,
        &Place::Unit {
            unit: "app.service".into(),
            scope: Scope::System,
            fallback,
        },
        delivery,
        &OutputMask::default(),
    )
}

/// `systemctl show`'s answer for an active unit.
fn active(main_pid: u32, exec_reload: bool) -> String {
    let reload = if exec_reload {
        "{ path=/bin/kill ; argv[]=/bin/kill -HUP $MAINPID }"
    } else {
        ""
    };
    format!("rc=0\nLoadState=loaded\nActiveState=active\nMainPID={main_pid}\nExecReload={reload}\n")
}

/// Unmarks `pids`.
fn in_unit_not(snapshot: &mut Snapshot, pids: &[u32]) {
    for pid in pids {
        if let Some(process) = snapshot.processes.get_mut(pid) {
            process.in_unit = false;
        }
    }
}

/// Marks `pids` as the unit's processes.
fn in_unit(snapshot: &mut Snapshot, pids: &[u32]) {
    for pid in pids {
        if let Some(process) = snapshot.processes.get_mut(pid) {
            process.in_unit = true;
        }
    }
}

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
    let master = discover(&snapshot, &OnHost::Only, &OutputMask::default()).unwrap();
    assert_eq!((master.pid, master.start_time), (500, 1000));
    assert_eq!(master.workers, vec![501, 502]);
}

#[test]
fn without_setproctitle_the_master_is_the_gunicorn_whose_parent_is_not() {
    let snapshot = host(&untitled(700, "app"));
    let master = discover(&snapshot, &OnHost::Only, &OutputMask::default()).unwrap();
    assert_eq!(master.pid, 700);
    assert_eq!(master.workers, vec![701, 702]);
}

#[test]
fn two_masters_are_refused_and_listed_and_name_picks_one() {
    let mut lines = titled(500, "blue");
    lines.extend(untitled(700, "green"));
    let snapshot = host(&lines);
    let error = discover(&snapshot, &OnHost::Only, &OutputMask::default()).unwrap_err();
    let DiscoveryError::Ambiguous { count, list, .. } = &error else {
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
            &OnHost::Name("blue".into()),
            &OutputMask::default()
        )
        .unwrap()
        .pid,
        500
    );
    assert_eq!(
        discover(
            &snapshot,
            &OnHost::Name("green".into()),
            &OutputMask::default()
        )
        .unwrap()
        .pid,
        700
    );
    assert!(matches!(
        discover(
            &snapshot,
            &OnHost::Name("red".into()),
            &OutputMask::default()
        ),
        Err(DiscoveryError::NotRunning { detail: _, .. })
    ));
}

#[test]
fn a_stale_pidfile_naming_an_unrelated_process_is_refused() {
    let mut snapshot = host(&titled(500, "app"));
    snapshot.pidfile = Some("300".into());
    let error = discover(
        &snapshot,
        &OnHost::Pidfile("/run/app.pid".into()),
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
    let strategy = OnHost::Pidfile("/run/app.pid".into());
    assert!(matches!(
        discover(&snapshot, &strategy, &OutputMask::default()),
        Err(DiscoveryError::Worker { pid: 501, .. })
    ));
    snapshot.pidfile = Some("9999\n".into());
    assert!(matches!(
        discover(&snapshot, &strategy, &OutputMask::default()),
        Err(DiscoveryError::NotRunning { detail: _, .. })
    ));
    snapshot.pidfile = None;
    assert!(matches!(
        discover(&snapshot, &strategy, &OutputMask::default()),
        Err(DiscoveryError::NotRunning { detail: _, .. })
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
fn an_active_unit_with_exec_reload_is_reloaded_through_systemd_by_default() {
    let snapshot = host(&titled(500, "app"));
    let found = through_unit(&snapshot, Some(&active(500, true)), Delivery::Auto).unwrap();
    assert_eq!(
        (found.master.pid, found.master.workers.clone()),
        (500, vec![501, 502])
    );
    assert_eq!(found.delivery, Delivery::Systemctl);
    assert!(!found.kill_if_no_reload);
    assert_eq!(found.how, "MainPID of app.service");
    // Without ExecReload, auto signals the main process itself...
    let found = through_unit(&snapshot, Some(&active(500, false)), Delivery::Auto).unwrap();
    assert_eq!(found.delivery, Delivery::Kill);
    // ...and `delivery: systemctl` is refused before anything is sent.
    assert_eq!(
        through_unit(&snapshot, Some(&active(500, false)), Delivery::Systemctl),
        Err(DiscoveryError::NoExecReload {
            unit: "app.service".into()
        })
    );
}

#[test]
fn main_pid_zero_and_a_wrapper_shell_are_refused_with_what_to_change() {
    let snapshot = host(&titled(500, "app"));
    let error = through_unit(&snapshot, Some(&active(0, true)), Delivery::Auto).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("app.service is active but systemd knows no main process (MainPID=0)"),
        "{error}"
    );
    let mut lines = vec![stat(
        490,
        "sh",
        'S',
        1,
        990,
        "/bin/sh -c gunicorn app:app; true",
    )];
    lines.extend(
        titled(500, "app")
            .into_iter()
            .map(|l| l.replacen(" S 1 ", " S 490 ", 1)),
    );
    let mut snapshot = host(&lines);
    assert_eq!(
        through_unit(&snapshot, Some(&active(490, true)), Delivery::Systemctl)
            .unwrap_err()
            .to_string(),
        "the main process of app.service is pid 490, which is not Gunicorn but `/bin/sh -c gunicorn app:app; true`: \
         ExecStart must run the server itself (a wrapper script must `exec` it), so that the unit's main process is the master; \
         that process was not signalled"
    );
    // The same from the cgroup alone: the process the manager started is the shell.
    in_unit(&mut snapshot, &[490, 500, 501, 502]);
    assert!(matches!(
        through_unit(&snapshot, None, Delivery::Systemctl),
        Err(DiscoveryError::Unrelated { pid: 490, .. })
    ));
}

#[test]
fn without_the_managers_answer_the_cgroup_names_the_main_process() {
    let mut lines = titled(500, "app");
    lines.extend(titled(600, "other"));
    let mut snapshot = host(&lines);
    in_unit(&mut snapshot, &[500, 501, 502]);
    let found = through_unit(&snapshot, None, Delivery::Systemctl).unwrap();
    assert_eq!(found.master.pid, 500);
    assert_eq!(found.how, "main process of app.service (its cgroup)");
    // Two masters in cgroups of that name (a system unit and a user unit
    // both called app.service): refused, neither is guessed.
    in_unit(&mut snapshot, &[600, 601, 602]);
    assert!(matches!(
        through_unit(&snapshot, None, Delivery::Kill),
        Err(DiscoveryError::Ambiguous { count: 2, .. })
    ));
    in_unit_not(&mut snapshot, &[600, 601, 602]);
    // auto cannot know about ExecReload: systemctl first, kill if it has none.
    let found = through_unit(&snapshot, None, Delivery::Auto).unwrap();
    assert_eq!(found.delivery, Delivery::Systemctl);
    assert!(found.kill_if_no_reload);
}

#[test]
fn an_inactive_unit_falls_back_to_a_named_master_under_auto_only() {
    let snapshot = host(&titled(500, "app"));
    let named = || OnHost::Name("app".to_string());
    let inactive = "rc=0\nLoadState=loaded\nActiveState=inactive\nMainPID=0\n";
    let found = through_unit_or(&snapshot, Some(inactive), Delivery::Auto, named()).unwrap();
    assert_eq!((found.master.pid, found.delivery), (500, Delivery::Kill));
    assert_eq!(found.how, "named app (app.service is not active)");
    let error = through_unit(&snapshot, Some(inactive), Delivery::Systemctl).unwrap_err();
    assert_eq!(
        error.to_string(),
        "app.service is not active (ActiveState=inactive): `delivery: systemctl` reloads a running unit only"
    );
    assert!(error.is_not_running());
    // Without `pidfile` or `name`, "the one master on the host" is not a
    // fallback: it could be another app's.
    let error = through_unit(&snapshot, Some(inactive), Delivery::Auto).unwrap_err();
    assert_eq!(
        error.to_string(),
        "app.service is not active (ActiveState=inactive): `delivery: auto` reloads a running unit only; \
         give `pidfile` or `name` beside `unit` for a master that runs without it"
    );
    assert!(error.is_not_running());
    // Under auto with no master on the host either, both places are named.
    assert_eq!(
        through_unit_or(&host(&[]), Some(inactive), Delivery::Auto, named())
            .unwrap_err()
            .to_string(),
        "no Gunicorn master is running (app.service is not active (ActiveState=inactive), and no master named `app`)"
    );
    // No manager at all: auto still finds the named master on the host; an
    // explicit delivery says why systemd could not be asked.
    let no_systemd =
        "rc=1\nSystem has not been booted with systemd as init system (PID 1). Can't operate.\n";
    assert_eq!(
        through_unit_or(&snapshot, Some(no_systemd), Delivery::Auto, named()).map(|f| f.master.pid),
        Ok(500)
    );
    let error = through_unit(&snapshot, Some(no_systemd), Delivery::SystemctlKill).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("no systemd system manager runs on this host"),
        "{error}"
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
            &OnHost::Pidfile("p".into()),
            &OutputMask::default()
        ),
        Err(DiscoveryError::Zombie { pid: 500 })
    );
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
            &OnHost::Pidfile("/run/app.pid".into()),
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
        discover(&snapshot, &OnHost::Only, &OutputMask::default())
            .unwrap()
            .pid,
        500
    );
    let mut untitled_lines = untitled(700, "app");
    untitled_lines.extend(decoys());
    let snapshot = host(&untitled_lines);
    assert_eq!(
        discover(&snapshot, &OnHost::Only, &OutputMask::default())
            .unwrap()
            .pid,
        700
    );
    assert_eq!(
        discover(
            &snapshot,
            &OnHost::Name("app".into()),
            &OutputMask::default()
        )
        .unwrap()
        .pid,
        700
    );
}

/// Discovery in container `web`, whose engine said `answer`.
fn in_web(snapshot: &Snapshot, answer: &str) -> Result<Found, DiscoveryError> {
    let mut snapshot = snapshot.clone();
    snapshot.container = Some(answer.to_string());
    super::discover(
        &snapshot,
        &GUNICORN,
        &Place::Container {
            engine: None,
            name: "web".into(),
        },
        Delivery::Auto,
        &OutputMask::default(),
    )
}

const RUNNING: &str = "engine=podman\nrc=0\nherd-data 500 true 0 web 2026-11-29T10:00:00Z\n";

/// A container's processes: PID 1 (host pid 500) is `pid1`, and under it
/// a master (600) with two workers, unless PID 1 is the master.
fn container(pid1: &str) -> Snapshot {
    let mut lines = vec![stat(
        490,
        "conmon",
        'S',
        1,
        900,
        "/usr/bin/conmon --api-version 1",
    )];
    if pid1.is_empty() {
        lines.extend(
            titled(500, "web")
                .into_iter()
                .map(|l| l.replacen(" S 1 ", " S 490 ", 1)),
        );
    } else {
        lines.push(stat(500, "init", 'S', 490, 950, pid1));
        lines.extend(
            titled(600, "web")
                .into_iter()
                .map(|l| l.replacen(" S 1 ", " S 500 ", 1)),
        );
    }
    host(&lines)
}

#[test]
fn in_a_container_the_master_is_pid_1_or_the_child_of_an_init() {
    let found = in_web(&container(""), RUNNING).unwrap();
    assert_eq!(
        (found.master.pid, found.delivery),
        (500, Delivery::ContainerKill)
    );
    assert_eq!(found.master.workers, vec![501, 502]);
    assert_eq!(found.how, "PID 1 of container web");
    assert_eq!(
        found.container.as_ref().map(|c| c.pid1),
        Some(container::Pid1::Master)
    );

    for init in [
        "/run/podman-init -- gunicorn",
        "/sbin/docker-init -- gunicorn",
        "tini -- gunicorn",
        "/usr/bin/dumb-init --single-child gunicorn",
    ] {
        let found = in_web(&container(init), RUNNING).unwrap();
        assert_eq!(
            (found.master.pid, found.delivery),
            (600, Delivery::ContainerKill),
            "{init}"
        );
        assert_eq!(
            found.container.as_ref().map(|c| c.pid1),
            Some(container::Pid1::Init)
        );
    }
    // Inits that signal the whole process group would kill the workers with
    // the HUP: the master is signalled from inside instead.
    for group in ["tini -g -- gunicorn", "/usr/bin/dumb-init gunicorn"] {
        let found = in_web(&container(group), RUNNING).unwrap();
        assert_eq!(
            (found.master.pid, found.delivery),
            (600, Delivery::ContainerExec),
            "{group}"
        );
    }
    // Another PID 1 (a supervisor): the master is signalled from inside.
    let found = in_web(&container("/usr/bin/python3 /usr/bin/supervisord"), RUNNING).unwrap();
    assert_eq!(
        (found.master.pid, found.delivery),
        (600, Delivery::ContainerExec)
    );
}

#[test]
fn a_shell_under_an_init_is_refused_too() {
    let mut lines = vec![
        stat(490, "conmon", 'S', 1, 900, "/usr/bin/conmon"),
        stat(
            500,
            "tini",
            'S',
            490,
            950,
            "tini -- /bin/sh -c gunicorn app:app; true",
        ),
        stat(
            550,
            "sh",
            'S',
            500,
            960,
            "/bin/sh -c gunicorn app:app; true",
        ),
    ];
    lines.extend(
        titled(600, "web")
            .into_iter()
            .map(|l| l.replacen(" S 1 ", " S 550 ", 1)),
    );
    let error = in_web(&host(&lines), RUNNING).unwrap_err();
    assert!(
        error.to_string().starts_with(
            "PID 1 of the container web is an init whose child is a shell (`/bin/sh -c gunicorn app:app; true`), which does not pass HUP on"
        ),
        "{error}"
    );
    assert!(!error.is_not_running());
}

#[test]
fn a_shell_as_pid_1_is_refused_with_the_fix() {
    let error = in_web(&container("/bin/sh -c gunicorn app:app"), RUNNING).unwrap_err();
    assert_eq!(
        error.to_string(),
        "PID 1 of the container web is a shell (`/bin/sh -c gunicorn app:app`), which does not pass HUP on to Gunicorn: \
         the reload would silently do nothing. Make Gunicorn PID 1 (the exec form of CMD, `CMD [\"gunicorn\", ...]`, \
         or `exec gunicorn ...` in the start script), or run the container with an init (`--init`)"
    );
}

#[test]
fn a_container_that_is_not_there_or_not_running_or_ambiguous_says_so() {
    let snapshot = container("");
    let not_running = in_web(
        &snapshot,
        "engine=docker\nrc=0\nherd-data 0 false 2 /web 2026-11-29T10:00:00Z\n",
    )
    .unwrap_err();
    assert_eq!(
        not_running.to_string(),
        "no Gunicorn master is running (the container web is not running)"
    );
    assert!(not_running.is_not_running());
    let missing = in_web(
        &snapshot,
        "engine=docker\nrc=1\nError: No such container: web\n",
    )
    .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "no Gunicorn master is running (docker has no container `web`)"
    );
    assert_eq!(
        in_web(&snapshot, "engine=both\n").unwrap_err().to_string(),
        "both docker and podman are installed on this host: choose one with `engine`"
    );
    assert_eq!(
        in_web(&snapshot, "engine=none\n").unwrap_err().to_string(),
        "neither docker nor podman is installed on this host"
    );
    assert_eq!(
        in_web(
            &snapshot,
            "engine=docker\nrc=0\nherd-data 1 true 0 web a\nherd-data 2 true 0 web b\n"
        )
        .unwrap_err()
        .to_string(),
        "`web` names 2 docker containers: name exactly one"
    );
    assert_eq!(
        in_web(&snapshot, "engine=docker\nrc=0\nherd-data 500 true 0 /cafe0123 t\n")
            .unwrap_err()
            .to_string(),
        "no container is named `web`: the engine found `cafe0123` by its ID instead, which is not signalled"
    );
    let denied = in_web(
        &snapshot,
        "engine=docker\nrc=1\npermission denied while trying to connect to the Docker daemon socket\n",
    )
    .unwrap_err();
    assert!(
        denied
            .to_string()
            .starts_with("`docker inspect web` failed (exit code 1): permission denied"),
        "{denied}"
    );
}

/// nginx, Puma and Unicorn fork a worker under the master's own title and
/// rename it a moment later: that child is no second master.
#[test]
fn a_worker_forked_a_moment_ago_under_the_masters_title_is_no_second_master() {
    use crate::reload::server::NGINX;
    let title = "nginx: master process /usr/sbin/nginx -c /srv/nginx.conf";
    let lines = vec![
        stat(500, "nginx", 'S', 1, 1000, title),
        stat(501, "nginx", 'S', 500, 1001, "nginx: worker process"),
        stat(502, "nginx", 'S', 500, 1002, title),
    ];
    let snapshot = host(&lines);
    let master = on_host_master(&snapshot, &NGINX, &OnHost::Only, &OutputMask::default()).unwrap();
    assert_eq!(master.pid, 500);
    // Not a worker yet either: the next look counts it once renamed.
    assert_eq!(master.workers, vec![501]);
    // A child master with workers of its own (an upgrade) is a master.
    let mut lines = lines;
    lines.push(stat(503, "nginx", 'S', 502, 1003, "nginx: worker process"));
    let error =
        on_host_master(&host(&lines), &NGINX, &OnHost::Only, &OutputMask::default()).unwrap_err();
    assert!(
        matches!(error, DiscoveryError::Ambiguous { count: 2, .. }),
        "{error:?}"
    );
}

/// An interrupted USR2 leaves two masters, the new one the old one's child:
/// whichever the pidfile names, herd refuses to signal either.
#[test]
fn a_half_done_upgrade_is_refused_whichever_master_is_named() {
    use crate::reload::server::UNICORN;
    let old = "unicorn master (old) -c /srv/u.rb -D";
    let new = "unicorn master -c /srv/u.rb -D";
    let worker = "unicorn worker[0] -c /srv/u.rb -D";
    let lines = vec![
        stat(500, "unicorn", 'S', 1, 1000, old),
        stat(501, "unicorn", 'S', 500, 1001, worker),
        stat(600, "unicorn", 'S', 500, 2000, new),
        stat(601, "unicorn", 'S', 600, 2001, worker),
    ];
    let snapshot = host(&lines);
    for (pid, relation, other) in [(600, "its parent", 500), (500, "its child", 600)] {
        let mut snapshot = snapshot.clone();
        snapshot.pidfile = Some(pid.to_string());
        let error = on_host_master(
            &snapshot,
            &UNICORN,
            &OnHost::Pidfile("/srv/unicorn.pid".into()),
            &OutputMask::default(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            DiscoveryError::UpgradeUnfinished {
                server: "Unicorn",
                pid,
                relation,
                other
            }
        );
    }
    // Untitled Gunicorn: the new master is a Gunicorn child with Gunicorn children.
    let cmd = "/srv/venv/bin/python3 /srv/venv/bin/gunicorn app:app";
    let lines = vec![
        stat(700, "python3", 'S', 1, 1000, cmd),
        stat(701, "python3", 'S', 700, 1001, cmd),
        stat(800, "python3", 'S', 700, 2000, cmd),
        stat(801, "python3", 'S', 800, 2001, cmd),
    ];
    let mut snapshot = host(&lines);
    snapshot.pidfile = Some("700".into());
    let error = discover(
        &snapshot,
        &OnHost::Pidfile("/srv/gunicorn.pid".into()),
        &OutputMask::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            DiscoveryError::UpgradeUnfinished {
                pid: 700,
                other: 800,
                ..
            }
        ),
        "{error:?}"
    );
}
