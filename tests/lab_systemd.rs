//! `herd lab up --unit-hosts N`: the last hosts run Gunicorn as systemd user
//! units of the app account under a real user manager, and a least-privilege
//! deploy account may reload them and nothing else. Needs root, OpenSSH and
//! the venv (`HERD_LAB_VENV`).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn owner_uid(pid: u32) -> Option<u32> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Waits until `master` has a full set of workers none of which is in `old`.
fn workers_replaced(master: u32, old: &[u32]) -> Vec<u32> {
    let mut now = Vec::new();
    let replaced = wait_until(Duration::from_secs(15), || {
        now = children(master);
        now.len() == old.len() && now.iter().all(|pid| !old.contains(pid))
    });
    assert!(
        replaced,
        "workers of {master} not replaced: {old:?} -> {now:?}"
    );
    now
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every process whose command line names `dir` (sshd, Gunicorn untitled).
fn processes_naming(dir: &Path) -> Vec<(u32, String)> {
    let prefix = format!("{}/", dir.display());
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| alive(*pid))
        .map(|pid| (pid, cmdline(pid)))
        .filter(|(_, cmd)| cmd.contains(&prefix) && !cmd.contains("lab down"))
        .collect()
}

/// The lab's sshd, masters and workers, to prove `down` stopped them.
fn lab_pids(lab: &Lab) -> Vec<u32> {
    let mut pids = Vec::new();
    for host in lab.hosts() {
        pids.extend(host.sshd_pid);
        if let Some(master) = read_pid(&host.pidfile) {
            pids.push(master);
            pids.extend(children(master));
        }
    }
    pids
}

fn unit_files() -> BTreeSet<String> {
    fs::read_dir(app_home().join(".config/systemd/user"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn app_cgroups() -> Vec<String> {
    [
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ]
    .iter()
    .map(|root| Path::new(root).join(LAB_APP_ACCOUNT))
    .filter(|dir| dir.exists())
    .map(|dir| dir.display().to_string())
    .collect()
}

fn lab_down(lab: &Lab) -> Run {
    let down = Herd::new()
        .args(["lab", "down", "--dir"])
        .arg(lab.dir())
        .run();
    down.assert_code(0);
    down
}

/// Whether a lab outside this test (another test run, an operator's demo)
/// has unit hosts: then the shared manager must stay, and a test that ends
/// it or waits for the last `down` to stop it cannot run.
fn another_unit_lab_runs() -> bool {
    let units = unit_files();
    if !units.is_empty() {
        eprintln!("skipped: other labs' units run on this machine: {units:?}");
    }
    !units.is_empty()
}

/// After the last lab's `down`: no manager, no cgroup, no unit file.
fn assert_manager_gone() {
    assert_eq!(unit_files(), BTreeSet::new(), "unit files left");
    assert_eq!(
        user_manager_pids(),
        Vec::<u32>::new(),
        "a user manager is left"
    );
    assert_eq!(app_cgroups(), Vec::<String>::new(), "cgroups left");
}

#[test]
fn unit_hosts_run_gunicorn_under_a_real_user_manager() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_units(3, 2);
    let app_uid = app_uid();

    assert_eq!(lab.deploy_user(), Some("herd-lab-deploy"));
    let plain = lab.host("host01");
    assert_eq!(
        (plain.unit.as_deref(), plain.app_user.as_str()),
        (None, lab.user())
    );
    let reloadable = lab.host("host02");
    let fixed = lab.host("host03");
    assert!(reloadable.unit_reload && !fixed.unit_reload);
    for host in [reloadable, fixed] {
        assert_eq!(host.app_user, LAB_APP_ACCOUNT);
        assert_eq!(healthz(host), "ok v1");
        // systemd's MainPID is the master Gunicorn wrote to the pidfile.
        let master = lab.main_pid(&host.name);
        assert_eq!(Some(master), read_pid(&host.pidfile), "{}", host.name);
        assert_eq!(Some(master), host.gunicorn_pid);
        assert_eq!(owner_uid(master), Some(app_uid));
        assert_eq!(children(master).len(), 2);
        assert_eq!(lab.unit_property(&host.name, "ActiveState"), "active");
        let proc_name = lab.unit(&host.name).trim_end_matches(".service");
        let command = cmdline(master);
        if host.name == "host03" {
            // Odd hosts have process titles.
            assert_eq!(command, format!("gunicorn: master [{proc_name}]"));
        } else {
            assert!(
                command.contains("/gunicorn ") && command.contains(&format!("--name {proc_name} ")),
                "{command}"
            );
        }
    }

    // `systemctl --user reload` replaces the workers under the same master.
    let master = lab.main_pid("host02");
    let before = children(master);
    let reload = lab.user_systemctl(&["reload", lab.unit("host02")]);
    assert!(reload.status.success(), "{reload:?}");
    workers_replaced(master, &before);
    assert_eq!(lab.main_pid("host02"), master);
    assert_eq!(healthz(reloadable), "ok v1");

    // The unit without ExecReload refuses, as systemd says it.
    let refused = lab.user_systemctl(&["reload", lab.unit("host03")]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("Job type reload is not applicable"),
        "{refused:?}"
    );

    // One playbook for any lab: every host says its unit and its app account.
    let inventory = fs::read_to_string(lab.inventory()).unwrap();
    for host in lab.hosts() {
        let line = inventory
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{}:", host.name)))
            .unwrap();
        let unit = host.unit.clone().unwrap_or_default();
        assert!(
            line.contains(&format!("app_user: {}", host.app_user)),
            "{line}"
        );
        if host.unit.is_some() {
            assert!(line.contains(&format!("app_unit: {unit}")), "{line}");
            assert!(
                line.contains("app_start: ") && line.contains("start-unit.sh"),
                "{line}"
            );
        } else {
            assert!(
                line.contains("app_unit: lab-") && line.contains("-host01.service"),
                "{line}"
            );
        }
    }

    let status = Herd::new()
        .args(["lab", "status", "--dir"])
        .arg(lab.dir())
        .run();
    status.assert_code(0);
    assert!(
        status.stdout().contains(&format!(
            "unit {} (user, as herd-lab-app, no ExecReload)",
            lab.unit("host03")
        )),
        "{status}"
    );
}

#[test]
fn the_login_account_starts_a_unit_and_may_become_the_app_account_or_itself() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_units(2, 1);
    let host = lab.host("host02");
    let stop = lab.user_systemctl(&["stop", lab.unit("host02")]);
    assert!(stop.status.success(), "{stop:?}");
    assert_eq!(lab.unit_property("host02", "ActiveState"), "inactive");

    let start = lab.ssh_as(
        lab.user(),
        "host02",
        &host.app_dir.join("start-unit.sh").display().to_string(),
    );
    assert!(start.status.success(), "{start:?}");
    assert_eq!(lab.unit_property("host02", "ActiveState"), "active");
    assert!(wait_until(Duration::from_secs(10), || healthz(host) == "ok v1"));

    // `become_user: "{{ app_user }}"` works on every host: the login account
    // may become the app account and itself, and sudo keeps the runtime dir.
    for (name, app_user) in [("host01", lab.user()), ("host02", LAB_APP_ACCOUNT)] {
        assert_eq!(lab.host(name).app_user, app_user);
        let became = lab.ssh_as(
            lab.user(),
            name,
            &format!("XDG_RUNTIME_DIR=/run/kept sudo -n -u {app_user} -- sh -c 'echo $(id -un) $XDG_RUNTIME_DIR'"),
        );
        assert_eq!(
            String::from_utf8_lossy(&became.stdout),
            format!("{app_user} /run/kept\n"),
            "{became:?}"
        );
    }
}

#[test]
fn the_deploy_account_deploys_and_reloads_and_may_do_nothing_else() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_units(3, 2);
    let deploy = lab.deploy_user().expect("a deploy account").to_string();
    let runtime = app_runtime_dir();
    let host = lab.host("host02");
    let sudo = |verb: &str, name: &str| {
        format!(
            "XDG_RUNTIME_DIR={} sudo -n -u {LAB_APP_ACCOUNT} -- systemctl --user {verb} {}",
            runtime.display(),
            lab.unit(name)
        )
    };

    // It writes a release, switches `current` and takes herd's lock, through
    // the shared group, no sudo.
    let app = host.app_dir.display();
    let deployed = lab.ssh_as(
        &deploy,
        "host02",
        &format!(
            "cd {app} && mkdir releases/v2 && cp releases/v1/app.py releases/v2/ \
             && echo v2 > releases/v2/RELEASE && ln -s releases/v2 current.next \
             && mv -T current.next current && (set -C; echo me > .herd-deploy.lock) \
             && rm .herd-deploy.lock"
        ),
    );
    assert!(deployed.status.success(), "{deployed:?}");

    let master = lab.main_pid("host02");
    let before = children(master);
    let reload = lab.ssh_as(&deploy, "host02", &sudo("reload", "host02"));
    assert!(reload.status.success(), "{reload:?}");
    workers_replaced(master, &before);
    assert_eq!(lab.main_pid("host02"), master);
    assert!(wait_until(Duration::from_secs(10), || healthz(host) == "ok v2"));

    // Anything else is refused at once with sudo's own message.
    for (verb, name) in [
        ("restart", "host02"),
        ("stop", "host02"),
        ("reload", "host03"),
    ] {
        let started = Instant::now();
        let refused = lab.ssh_as(&deploy, "host02", &sudo(verb, name));
        assert!(!refused.status.success(), "{verb} {name}: {refused:?}");
        assert!(
            stderr(&refused).contains("sudo: a password is required"),
            "{verb} {name}: {refused:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{verb} {name} hung"
        );
    }
    assert_eq!(lab.main_pid("host02"), master);
    assert_eq!(lab.unit_property("host02", "ActiveState"), "active");
}

#[test]
fn two_labs_share_one_manager_and_the_last_down_stops_it() {
    let _one = one_at_a_time();
    if another_unit_lab_runs() {
        return;
    }
    let first = Lab::up_with_units(2, 1);
    let second = Lab::up_with_units(3, 2);
    let managers = user_manager_pids();
    assert_eq!(managers.len(), 1, "{managers:?}");
    let first_pids = lab_pids(&first);
    let first_units: Vec<String> = first
        .unit_hosts()
        .iter()
        .filter_map(|h| h.unit.clone())
        .collect();

    lab_down(&first);
    assert!(first_pids.iter().all(|pid| !alive(*pid)), "{first_pids:?}");
    assert_eq!(processes_naming(first.dir()), vec![]);
    assert!(first_units.iter().all(|u| !unit_files().contains(u)));
    assert_eq!(user_manager_pids(), managers);
    for host in second.unit_hosts() {
        assert_eq!(second.unit_property(&host.name, "ActiveState"), "active");
        assert_eq!(healthz(host), "ok v1");
    }

    let second_pids = lab_pids(&second);
    lab_down(&second);
    assert!(
        second_pids.iter().all(|pid| !alive(*pid)),
        "{second_pids:?}"
    );
    assert_eq!(processes_naming(second.dir()), vec![]);
    assert!(!managers.iter().any(|pid| alive(*pid)));
    assert_manager_gone();
    assert!(!Path::new(&format!("/etc/sudoers.d/herd-lab-deploy-{}", tag(&second))).exists());
}

#[test]
fn down_works_when_the_manager_is_gone() {
    let _one = one_at_a_time();
    if another_unit_lab_runs() {
        return;
    }
    let lab = Lab::up_with_units(2, 1);
    let pids = lab_pids(&lab);
    for manager in user_manager_pids() {
        // SAFETY: a plain kill(2) of the manager this test's lab started.
        unsafe { libc::kill(manager as libc::pid_t, libc::SIGKILL) };
        assert!(wait_until(Duration::from_secs(5), || !alive(manager)));
    }
    lab_down(&lab);
    assert!(pids.iter().all(|pid| !alive(*pid)), "{pids:?}");
    assert_eq!(processes_naming(lab.dir()), vec![]);
    assert_manager_gone();
}

#[test]
fn unit_hosts_must_fit_in_the_lab() {
    let dir = tempfile::tempdir().unwrap();
    let run = Herd::new()
        .args(["lab", "up", "--hosts", "1", "--unit-hosts", "2", "--dir"])
        .arg(dir.path())
        .run();
    run.assert_code(1);
    assert_eq!(
        run.stderr(),
        "error: --unit-hosts 2 asks for more unit hosts than the lab's 1 hosts\n"
    );
}

/// The lab's tag, as its unit names carry it (`lab-1a2b3c-host02.service`).
fn tag(lab: &Lab) -> String {
    let unit = lab.unit_hosts()[0].unit.clone().unwrap();
    unit.rsplit_once('-').unwrap().0.to_string()
}

#[test]
fn unit_hosts_need_root() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let run = std::process::Command::new("runuser")
        .args([
            "-u",
            "herd-lab",
            "--",
            herd_bin(),
            "lab",
            "up",
            "--hosts",
            "2",
        ])
        .args(["--unit-hosts", "1", "--dir"])
        .arg(&lab_dir)
        .env_remove("HERD_LAB_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert_eq!(
        stderr(&run),
        "error: --unit-hosts needs root: the lab runs a systemd user manager for the account \
         herd-lab-app; run `sudo herd lab up`, or leave out --unit-hosts\n"
    );
    assert!(!lab_dir.exists());
}

#[test]
fn a_unit_can_be_replaced_by_a_wrapper_shell_and_down_still_stops_it() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_units(2, 1);
    let host = lab.host("host02");
    let original = fs::read_to_string(lab.unit_file("host02")).unwrap();
    let exec_start = original
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .to_string();
    let wrapped = original.replace("Type=notify", "Type=simple").replace(
        &format!("ExecStart={exec_start}"),
        &format!("ExecStart=/bin/sh -c \"{exec_start}; echo gunicorn exited\""),
    );
    let restarted = lab.replace_unit("host02", &wrapped);
    assert!(restarted.status.success(), "{restarted:?}");

    let shell = lab.main_pid("host02");
    assert!(
        cmdline(shell).starts_with("/bin/sh -c "),
        "{}",
        cmdline(shell)
    );
    let mut master = None;
    assert!(wait_until(Duration::from_secs(15), || {
        master = read_pid(&host.pidfile).filter(|pid| *pid != shell && alive(*pid));
        master.is_some() && healthz(host) == "ok v1"
    }));
    let master = master.unwrap();
    assert_eq!(proc_stat(master).map(|s| s.ppid), Some(shell));

    let pids = lab_pids(&lab);
    lab_down(&lab);
    assert!(
        !alive(shell) && pids.iter().all(|pid| !alive(*pid)),
        "{pids:?}"
    );
    assert!(!lab.unit_file("host02").exists());
    assert_eq!(processes_naming(lab.dir()), vec![]);
}
