//! A reload through systemd that cannot work says why, and what to change,
//! and signals nothing: against the lab's real user manager and real sshd,
//! the unit not active, no `ExecReload`, `MainPID=0`, a wrapper shell as
//! the main process, no `systemctl`, no manager, bad keys and flags, and an
//! account whose sudo rule does not cover the step. Needs root, OpenSSH and
//! the venv (`HERD_LAB_VENV`).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const HEALTHZ: &str = "http://{{ ansible_host }}:{{ http_port }}/healthz";
/// Every lab host runs this many workers.
const WORKERS: usize = 2;

/// The reload the lab's unit hosts are meant for: the app account's user
/// manager, reached through sudo as that account.
const AS_APP: &str =
    "unit: \"{{ app_unit }}\", scope: user, become: true, become_user: \"{{ app_user }}\"";

/// A playbook that only reloads, with `reload` as its flow mapping's body.
fn reload_playbook(lab: &Lab, file: &str, reload: &str) -> PathBuf {
    lab.write(
        file,
        &format!(
            "hosts: web\nreload: {{ {reload} }}\n\
             validate: {{ timeout: 60s, settle: 1s, http: {{ url: \"{HEALTHZ}\", status: 200 }} }}\n"
        ),
    )
}

/// `herd run PLAYBOOK -i INVENTORY --limit HOST`.
fn run_on(inventory: &Path, playbook: &Path, host: &str) -> Run {
    Herd::new()
        .arg("run")
        .arg(playbook)
        .arg("-i")
        .arg(inventory)
        .args(["--limit", host])
        .run()
}

/// The run failed on `host` at `proof`, and its report line says `message`.
fn assert_reload_failed(run: &Run, host: &str, proof: &str, message: &str) {
    run.assert_code(1);
    let expected = format!("{host}: reload FAILED: proof `{proof}`: {message} (");
    assert!(
        run.stderr().lines().any(|l| l.starts_with(&expected)),
        "expected a line starting with\n{expected}\n{run}"
    );
    assert_eq!(run.summary_result(host), "failed", "{run}");
}

/// A Gunicorn master and its workers, as /proc shows them, and how many
/// signals its log says it handled.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Family {
    master: ProcStat,
    workers: Vec<u32>,
    signals_handled: usize,
}

/// Gunicorn writes its log next to its pidfile in the lab, and logs every
/// signal it handles (`Handling signal: hup`).
fn signals_handled(host: &LabHost) -> usize {
    let log = host.pidfile.with_file_name("gunicorn.log");
    fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .matches("Handling signal:")
        .count()
}

/// `host`'s master (the one its pidfile names), once it has its workers and serves.
fn family(host: &LabHost) -> Family {
    let mut seen = None;
    let settled = wait_until(Duration::from_secs(20), || {
        let Some(master) = read_pid(&host.pidfile)
            .and_then(proc_stat)
            .filter(|p| p.state != 'Z')
        else {
            return false;
        };
        let workers = children(master.pid);
        let full = workers.len() == WORKERS && healthz(host) == "ok v1";
        seen = Some(Family {
            master,
            workers,
            signals_handled: signals_handled(host),
        });
        full
    });
    assert!(
        settled,
        "{}: no serving master with {WORKERS} workers: {seen:?}",
        host.name
    );
    seen.unwrap()
}

/// Nothing was signalled: the same master (pid and start time) with the same
/// workers, no signal in its log, still serving; and so for a while, since
/// a reload replaces workers some time after the signal.
fn assert_untouched(host: &LabHost, before: &Family, run: &Run) {
    let same = || {
        proc_stat(before.master.pid)
            .is_some_and(|p| p.start_time == before.master.start_time && p.state != 'Z')
            && children(before.master.pid) == before.workers
            && signals_handled(host) == before.signals_handled
    };
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        assert!(
            same(),
            "{}: {before:?} was signalled or changed: master {:?}, workers {:?}, {} signals handled\n{run}",
            host.name,
            proc_stat(before.master.pid),
            children(before.master.pid),
            signals_handled(host)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(healthz(host), "ok v1", "{run}");
}

/// `name`'s unit file with `edit` applied to it and to its `ExecStart`
/// command, installed and restarted.
fn replace_unit(lab: &Lab, name: &str, edit: impl FnOnce(&str, &str) -> String) {
    let original = fs::read_to_string(lab.unit_file(name)).unwrap();
    let exec_start = original
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has ExecStart")
        .to_string();
    let edited = edit(&original, &exec_start);
    assert_ne!(edited, original, "the edit changed nothing");
    let restarted = lab.replace_unit(name, &edited);
    assert!(restarted.status.success(), "restart failed: {restarted:?}");
}

#[test]
fn an_inactive_unit_is_not_reloaded_and_auto_finds_no_master_elsewhere() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_units(3, 2);
    let host = lab.host("host02");
    let unit = lab.unit("host02");
    let others: Vec<(&LabHost, Family)> = ["host01", "host03"]
        .iter()
        .map(|name| (lab.host(name), family(lab.host(name))))
        .collect();
    let stop = lab.user_systemctl(&["stop", unit]);
    assert!(stop.status.success(), "{stop:?}");
    assert_eq!(lab.unit_property("host02", "ActiveState"), "inactive");
    assert!(
        wait_until(Duration::from_secs(5), || !host.pidfile.exists()),
        "Gunicorn left its pidfile"
    );

    let systemctl = reload_playbook(
        &lab,
        "systemctl.yml",
        &format!("{AS_APP}, delivery: systemctl"),
    );
    let run = run_on(lab.inventory(), &systemctl, "host02");
    assert_reload_failed(
        &run,
        "host02",
        "master",
        &format!(
            "{unit} is not active (no process runs in its cgroup): `delivery: systemctl` reloads a running unit only"
        ),
    );

    // auto looks for the master where the unit's fallback says, and says both.
    let auto = reload_playbook(
        &lab,
        "auto.yml",
        &format!("{AS_APP}, pidfile: \"{{{{ gunicorn_pidfile }}}}\""),
    );
    let run = run_on(lab.inventory(), &auto, "host02");
    assert_reload_failed(
        &run,
        "host02",
        "master",
        &format!(
            "no Gunicorn master is running ({unit} is not active (ActiveState=inactive), and the pidfile {} does not exist)",
            host.pidfile.display()
        ),
    );

    // Not started either, and the other hosts' masters (on the same machine) untouched.
    assert_eq!(lab.unit_property("host02", "ActiveState"), "inactive");
    assert!(healthz(host).starts_with("error: "), "{}", healthz(host));
    for (other, before) in &others {
        assert_untouched(other, before, &run);
    }
}

#[test]
fn a_unit_without_exec_reload_is_refused_by_systemctl_and_killed_by_auto() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_units(3, 2);
    let host = lab.host("host03");
    let unit = lab.unit("host03");
    assert_eq!(lab.unit_property("host03", "ExecReload"), "");
    let before = family(host);
    assert_eq!(lab.main_pid("host03"), before.master.pid);

    let systemctl = reload_playbook(
        &lab,
        "systemctl.yml",
        &format!("{AS_APP}, delivery: systemctl"),
    );
    let run = run_on(lab.inventory(), &systemctl, "host03");
    assert_reload_failed(
        &run,
        "host03",
        "signal",
        &format!(
            "HUP to {} through systemd failed, nothing was signalled: {unit} has no ExecReload \
             (systemd: Failed to reload {unit}: Job type reload is not applicable for unit {unit}.): \
             use `delivery: systemctl-kill` or `delivery: kill`, or give the unit `ExecReload=/bin/kill -HUP $MAINPID`",
            before.master.pid
        ),
    );
    assert_untouched(host, &before, &run);

    // auto asks the app account's manager, sees no ExecReload, and kills MainPID.
    let auto = reload_playbook(&lab, "auto.yml", AS_APP);
    let run = Herd::new()
        .arg("run")
        .arg(&auto)
        .arg("-i")
        .arg(lab.inventory())
        .args(["--limit", "host03", "--output", "json"])
        .run();
    run.assert_code(0);
    let finished = run
        .json_events()
        .into_iter()
        .find(|e| e["event"] == "reload_finished")
        .unwrap_or_else(|| panic!("no reload_finished\n{run}"));
    let master = before.master.pid;
    assert_eq!(finished["ok"], true, "{run}");
    assert_eq!(finished["delivery"], "kill", "{run}");
    assert_eq!(finished["master_pid"], master, "{run}");
    assert_eq!(
        finished["signals"],
        serde_json::json!([{"signal": "HUP", "pid": master, "via": "kill", "delivery": "sent"}]),
        "{run}"
    );
    let now = children(master);
    assert_eq!(now.len(), WORKERS, "{run}");
    assert!(
        now.iter().all(|pid| !before.workers.contains(pid)),
        "{now:?}\n{run}"
    );
    assert_eq!(
        proc_stat(master).map(|p| p.start_time),
        Some(before.master.start_time)
    );
    assert_eq!(lab.main_pid("host03"), master);
    assert_eq!(signals_handled(host), before.signals_handled + 1, "{run}");
}

#[test]
fn a_unit_whose_main_pid_is_zero_says_what_to_change() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_units(2, 1);
    let host = lab.host("host02");
    let unit = lab.unit("host02");
    // A daemonizing Gunicorn that systemd may not guess: it knows no main process.
    replace_unit(&lab, "host02", |text, exec_start| {
        let (program, args) = exec_start.split_once(' ').unwrap();
        text.replace("Type=notify", "Type=forking\nGuessMainPID=no")
            .replace(exec_start, &format!("{program} --daemon {args}"))
    });
    assert_eq!(lab.unit_property("host02", "ActiveState"), "active");
    assert_eq!(lab.main_pid("host02"), 0);
    let before = family(host);

    let auto = reload_playbook(&lab, "auto.yml", AS_APP);
    let run = run_on(lab.inventory(), &auto, "host02");
    assert_reload_failed(
        &run,
        "host02",
        "master",
        &format!(
            "{unit} is active but systemd knows no main process (MainPID=0), so herd cannot tell \
             which process is the master: give a Type=forking unit `PIDFile=`, or run Gunicorn in \
             the foreground (Type=notify)"
        ),
    );
    assert_untouched(host, &before, &run);
}

#[test]
fn a_wrapper_shell_as_main_process_is_named_and_not_signalled() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_units(2, 1);
    let host = lab.host("host02");
    let unit = lab.unit("host02");
    let mut wrapped = String::new();
    replace_unit(&lab, "host02", |text, exec_start| {
        wrapped = format!("/bin/sh -c {exec_start}; true");
        text.replace("Type=notify", "Type=simple").replace(
            &format!("ExecStart={exec_start}"),
            &format!("ExecStart=/bin/sh -c \"{exec_start}; true\""),
        )
    });
    let shell = lab.main_pid("host02");
    assert_eq!(cmdline(shell), wrapped);
    let shell_start = proc_stat(shell).unwrap().start_time;
    let before = family(host);
    assert_eq!(before.master.ppid, shell);

    let refusal = format!(
        "the main process of {unit} is pid {shell}, which is not Gunicorn but `{wrapped}`: \
         ExecStart must run the server itself (a wrapper script must `exec` it), so that the \
         unit's main process is the master; that process was not signalled"
    );
    // auto asks systemd for MainPID; systemctl finds it from the unit's cgroup.
    for (file, delivery) in [("auto.yml", "auto"), ("systemctl.yml", "systemctl")] {
        let playbook = reload_playbook(&lab, file, &format!("{AS_APP}, delivery: {delivery}"));
        let run = run_on(lab.inventory(), &playbook, "host02");
        assert_reload_failed(&run, "host02", "master", &refusal);
        assert_untouched(host, &before, &run);
        assert_eq!(
            proc_stat(shell).map(|p| (p.start_time, p.state != 'Z')),
            Some((shell_start, true)),
            "{delivery}: the shell\n{run}"
        );
        assert_eq!(lab.main_pid("host02"), shell);
    }
}

#[test]
fn a_host_without_systemctl_says_so() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_units(2, 1);
    let host = lab.host("host02");
    // Every program of /usr/bin and /usr/sbin but systemctl, as the PATH of
    // host02's sessions, set by its sshd.
    let bin = lab.dir().join("bin-without-systemctl");
    fs::create_dir(&bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    for dir in ["/usr/bin", "/usr/sbin"] {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name();
            let link = bin.join(&name);
            if name != "systemctl" && !link.exists() {
                std::os::unix::fs::symlink(entry.path(), link).unwrap();
            }
        }
    }
    let config = lab.dir().join("hosts/host02/sshd_config");
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str(&format!("SetEnv PATH={}\n", bin.display()));
    fs::write(&config, text).unwrap();
    let sshd = host.sshd_pid.expect("sshd pid");
    // SAFETY: a plain kill(2) of the sshd this test's lab started; it re-executes itself.
    assert_eq!(unsafe { libc::kill(sshd as libc::pid_t, libc::SIGHUP) }, 0);
    let expected_env = format!("{}\nno systemctl\n", bin.display());
    let mut seen = None;
    assert!(
        wait_until(Duration::from_secs(15), || {
            let out = lab.ssh_as(
                lab.user(),
                "host02",
                "echo \"$PATH\"; command -v systemctl || echo no systemctl",
            );
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            seen = Some(out);
            said == expected_env
        }),
        "host02's sessions still have systemctl: {seen:?}"
    );
    let before = family(host);

    let playbook = reload_playbook(
        &lab,
        "system.yml",
        "unit: \"{{ app_unit }}\", scope: system, delivery: systemctl",
    );
    let run = run_on(lab.inventory(), &playbook, "host02");
    assert_reload_failed(
        &run,
        "host02",
        "signal",
        &format!(
            "HUP to {} through systemd failed, nothing was signalled: systemctl is not installed on this \
             host (or not on PATH): /bin/sh: 1: eval: systemctl: not found",
            before.master.pid
        ),
    );
    assert_untouched(host, &before, &run);
}

#[test]
fn no_manager_for_the_account_or_the_host_says_which_is_missing() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_units(3, 2);
    let login_uid = std::process::Command::new("id")
        .args(["-u", lab.user()])
        .output()
        .unwrap();
    let login_uid = String::from_utf8_lossy(&login_uid.stdout)
        .trim()
        .to_string();
    assert!(
        !Path::new(&format!("/run/user/{login_uid}")).exists(),
        "the login account has a runtime dir: this test needs it to have no user manager"
    );
    let pid1 = fs::read_to_string("/proc/1/comm").unwrap();
    assert_ne!(
        pid1.trim(),
        "systemd",
        "this test needs PID 1 not to be systemd"
    );
    let host = lab.host("host02");
    let before = family(host);
    let master = before.master.pid;
    let no_bus = "Failed to connect to bus: No such file or directory";

    // The login account's own user manager: there is none.
    let mine = reload_playbook(
        &lab,
        "mine.yml",
        "unit: \"{{ app_unit }}\", scope: user, delivery: systemctl",
    );
    let run = run_on(lab.inventory(), &mine, "host02");
    // Asked before anything is sent: the unit's processes belong to another
    // account's manager, and the login account's cannot be reached.
    assert_reload_failed(
        &run,
        "host02",
        "master",
        &format!(
            "no systemd user manager runs for the login account ({no_bus}): start one at boot with \
             `loginctl enable-linger ACCOUNT`"
        ),
    );
    assert_untouched(host, &before, &run);

    // Becoming an account that has none (here the login account itself).
    let other = reload_playbook(
        &lab,
        "other.yml",
        &format!(
            "unit: \"{{{{ app_unit }}}}\", scope: user, become: true, become_user: {}, delivery: systemctl",
            lab.user()
        ),
    );
    let run = run_on(lab.inventory(), &other, "host02");
    // A least-privilege delivery does not ask the manager: the unit's
    // processes run for another account, so that account's unit is not active.
    assert_reload_failed(
        &run,
        "host02",
        "master",
        &format!(
            "{} is not active (no process runs in its cgroup): `delivery: systemctl` reloads a running unit only",
            lab.unit("host02")
        ),
    );
    // With `auto`, herd asks that account's manager, and says there is none.
    let other_auto = reload_playbook(
        &lab,
        "other-auto.yml",
        &format!(
            "unit: \"{{{{ app_unit }}}}\", scope: user, become: true, become_user: {}, delivery: auto, pidfile: /nonexistent",
            lab.user()
        ),
    );
    let run = run_on(lab.inventory(), &other_auto, "host02");
    assert_reload_failed(
        &run,
        "host02",
        "master",
        &format!(
            "no Gunicorn master is running ({} is not active (no process runs in its cgroup), and the pidfile /nonexistent does not exist)",
            lab.unit("host02")
        ),
    );
    assert_untouched(host, &before, &run);

    // The system manager: PID 1 here is not systemd.
    let system = reload_playbook(
        &lab,
        "system.yml",
        "unit: \"{{ app_unit }}\", scope: system, delivery: systemctl",
    );
    let run = run_on(lab.inventory(), &system, "host02");
    assert_reload_failed(
        &run,
        "host02",
        "signal",
        &format!(
            "HUP to {master} through systemd failed, nothing was signalled: no systemd system manager \
             runs on this host (PID 1 is not systemd: System has not been booted with systemd as init \
             system (PID 1). Can't operate.): use `scope: user` for a user unit, or `delivery: kill`"
        ),
    );
    assert_untouched(host, &before, &run);
}

/// A directory with `inventory.yml` whose one host, in group `web`, is `fake`.
fn fake_workspace(fake: &FakeHost) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "inventory.yml",
        &format!(
            "all:\n  children:\n    web:\n      hosts:\n        target: {{ ansible_host: 127.0.0.1, ansible_port: {} }}\n",
            fake.port()
        ),
    );
    dir
}

#[test]
fn reload_keys_that_cannot_work_under_systemd_are_refused_before_any_host() {
    let usr2 = "`signal: USR2` cannot be used with `unit`: the new master is the old one's child, \
                and systemd stops the service when the old master exits";
    let cases = [
        ("unit: app.service, signal: USR2", "USR2", usr2.to_string()),
        (
            "delivery: systemctl",
            "systemctl",
            "`delivery: systemctl` goes through systemd and needs `unit`".to_string(),
        ),
        (
            "unit: app.service, scope: session",
            "session",
            "unknown scope `session`: use system or user".to_string(),
        ),
        (
            "unit: app.service, become_user: deployer",
            "deployer",
            "`become_user` takes effect with `become: true`".to_string(),
        ),
        (
            "unit: app.service, pidfile: /run/app.pid, delivery: systemctl",
            "/run/app.pid",
            "with `unit`, `pidfile` is where `delivery: auto` looks when the unit is not active; \
             `delivery: systemctl` never looks there"
                .to_string(),
        ),
    ];
    for (keys, at, message) in cases {
        let fake = FakeHost::new();
        let dir = fake_workspace(&fake);
        let line = format!("reload: {{ {keys} }}");
        write_file(dir.path(), "playbook.yml", &format!("hosts: web\n{line}\n"));
        let col = line.find(at).unwrap() + 1;
        let run = Herd::new()
            .current_dir(dir.path())
            .args(["run", "playbook.yml", "-i", "inventory.yml"])
            .run();
        assert_refused_exactly(
            &run,
            &fake,
            &format!(
                "error: {message}\n  --> playbook.yml:2:{col}\n  |\n2 | {line}\n  |{}^\n",
                " ".repeat(col)
            ),
        );
    }
}

/// A unit name a host variable turns into a pattern (`app*`) or an option
/// (`--all`) would make systemctl reload or signal other units: refused,
/// naming the host, before any host is contacted.
#[test]
fn a_unit_name_that_is_no_single_unit_is_refused_before_any_host() {
    for (value, problem) in [
        (
            "app*",
            "`app*` is not one unit: a unit name holds only letters, digits and `:_.@-` (no patterns, spaces or slashes)",
        ),
        (
            "--all",
            "`--all` starts with `-`, which systemctl would read as an option",
        ),
    ] {
        let fake = FakeHost::new();
        let dir = fake_workspace(&fake);
        write_file(
            dir.path(),
            "inventory.yml",
            &format!(
                "all:\n  children:\n    web:\n      hosts:\n        target: {{ ansible_host: 127.0.0.1, ansible_port: {}, app_unit: \"{value}\" }}\n",
                fake.port()
            ),
        );
        let line = "reload: { unit: \"{{ app_unit }}\" }";
        write_file(dir.path(), "playbook.yml", &format!("hosts: web\n{line}\n"));
        let col = line.find("{{").unwrap() + 1;
        let run = Herd::new()
            .current_dir(dir.path())
            .args(["run", "playbook.yml", "-i", "inventory.yml"])
            .run();
        assert_refused_exactly(
            &run,
            &fake,
            &format!(
                "error: {problem} (reload.unit on host target)\n  --> playbook.yml:2:{col}\n  |\n2 | {line}\n  |{}^\n",
                " ".repeat(col)
            ),
        );
    }
}

#[test]
fn reload_flags_that_cannot_work_under_systemd_are_refused_naming_the_flag() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--unit", "app.service", "--signal", "USR2"],
            "--signal: `--signal USR2` cannot be used with `--unit`: the new master is the old \
             one's child, and systemd stops the service when the old master exits",
        ),
        (
            &["--delivery", "systemctl"],
            "--delivery: `--delivery systemctl` goes through systemd and needs `--unit`",
        ),
        (
            &["--unit", "app.service", "--scope", "session"],
            "--scope: unknown scope `session`: use system or user",
        ),
        (
            &[
                "--unit",
                "app.service",
                "--pidfile",
                "/run/app.pid",
                "--delivery",
                "systemctl",
            ],
            "--pidfile: with `--unit`, `--pidfile` is where `--delivery auto` looks when the unit \
             is not active; `--delivery systemctl` never looks there",
        ),
    ];
    for (flags, message) in cases {
        let fake = FakeHost::new();
        let dir = fake_workspace(&fake);
        let run = Herd::new()
            .current_dir(dir.path())
            .args(["reload", "-i", "inventory.yml"])
            .args(flags)
            .run();
        assert_refused_exactly(&run, &fake, &format!("error: {message}\n"));
    }

    // --become-user without --become: clap names the missing flag.
    let fake = FakeHost::new();
    let dir = fake_workspace(&fake);
    let run = Herd::new()
        .current_dir(dir.path())
        .args([
            "reload",
            "-i",
            "inventory.yml",
            "--unit",
            "app.service",
            "--become-user",
            "app",
        ])
        .run();
    run.assert_code(2);
    assert!(
        run.stderr().starts_with(
            "error: the following required arguments were not provided:\n  --become\n"
        ),
        "{run}"
    );
    assert_eq!(run.stdout(), "", "{run}");
    assert_eq!(fake.connections(), 0, "herd contacted the host\n{run}");
}

#[test]
fn the_deploy_account_is_refused_at_once_beyond_its_sudo_rule() {
    let _one = one_at_a_time();
    let lab = Lab::up_with_units(3, 2);
    let deploy = lab.deploy_user().expect("a deploy account").to_string();
    let inventory = lab.edited_inventory("deploy.yml", |text| {
        text.replacen(
            &format!("ansible_user: {}\n", lab.user()),
            &format!("ansible_user: {deploy}\n"),
            1,
        )
    });
    let step_timeout = Duration::from_secs(60);

    // A step as root: sudo wants a password, herd says so at once.
    let as_root = lab.write(
        "as-root.yml",
        "hosts: web\nsteps:\n  - name: Restart as root\n    run: id -un\n    become: true\n    timeout: 60s\n",
    );
    let started = Instant::now();
    let run = run_on(&inventory, &as_root, "host02");
    let took = started.elapsed();
    run.assert_code(1);
    assert!(
        run.stderr().contains(
            "host02: [1/1] Restart as root: FAILED: become: sudo needs a password on this host (herd uses sudo -n)"
        ),
        "{run}"
    );
    assert!(
        run.stderr().contains("sudo: a password is required"),
        "{run}"
    );
    assert!(
        took < step_timeout / 6,
        "took {took:?} of a {step_timeout:?} timeout\n{run}"
    );

    // Reloading host03's unit is not in the rule (host02's is).
    let host = lab.host("host03");
    let unit = lab.unit("host03");
    let before = family(host);
    let playbook = reload_playbook(
        &lab,
        "systemctl.yml",
        &format!("{AS_APP}, delivery: systemctl"),
    );
    let started = Instant::now();
    let run = run_on(&inventory, &playbook, "host03");
    let took = started.elapsed();
    assert_reload_failed(
        &run,
        "host03",
        "signal",
        &format!(
            "HUP to {} through systemd failed, nothing was signalled: sudo refused `systemctl --user reload {unit}` \
             (sudo: a password is required): the sudo rules for this account do not allow it",
            before.master.pid
        ),
    );
    // The validate timeout of the playbook is 60s.
    assert!(took < step_timeout / 6, "took {took:?}\n{run}");
    assert_untouched(host, &before, &run);
}
