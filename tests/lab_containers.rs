//! `herd lab up --container-hosts N`: hosts whose Gunicorn runs in a real
//! rootful Podman container, one of each PID 1 case (exec, init, shell), the
//! app directory bind-mounted from the host. Needs root, OpenSSH, the venv
//! (`HERD_LAB_VENV`) and Podman (scripts/setup.sh); without Podman these
//! tests say why and pass, unless `HERD_LAB_REQUIRE_CONTAINERS=1`.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// The cached rootfs and the image, as the lab names them.
const ROOTFS: &str = "/var/tmp/herd-lab/rootfs-v1.tar";
const IMAGE: &str = "localhost/herd-lab-gunicorn:v1";

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// The host named for its PID 1 case.
fn host_with<'a>(lab: &'a Lab, pid1: &str) -> &'a LabHost {
    lab.hosts()
        .iter()
        .find(|h| h.pid1.as_deref() == Some(pid1))
        .unwrap_or_else(|| panic!("no container host with PID 1 case {pid1}"))
}

/// The host PID of a container host's Gunicorn master.
fn master_of(lab: &Lab, host: &LabHost) -> u32 {
    let pid1 = lab.container_pid1(&host.name);
    match host.pid1.as_deref() {
        Some("exec") => pid1,
        _ => {
            let kids = children(pid1);
            assert_eq!(kids.len(), 1, "PID 1 {pid1} of {}: {kids:?}", host.name);
            kids[0]
        }
    }
}

/// Waits until `master` has its two workers and returns them.
fn full_workers(master: u32) -> Vec<u32> {
    let mut now = Vec::new();
    assert!(
        wait_until(Duration::from_secs(15), || {
            now = children(master);
            now.len() == 2
        }),
        "master {master} has workers {now:?}"
    );
    now
}

/// `pid` and every process below it.
fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut next = 0;
    while next < all.len() {
        all.extend(children(all[next]));
        next += 1;
    }
    all
}

#[test]
fn each_pid1_case_serves_v1_with_the_master_where_the_case_puts_it() {
    if !can_run_containers("each_pid1_case") {
        return;
    }
    let _one = one_at_a_time();
    let lab = Lab::up_with_containers(3, 3);
    let cases: Vec<(&str, Option<&str>)> = lab
        .hosts()
        .iter()
        .map(|h| (h.name.as_str(), h.pid1.as_deref()))
        .collect();
    assert_eq!(
        cases,
        [
            ("host01", Some("exec")),
            ("host02", Some("init")),
            ("host03", Some("shell"))
        ]
    );
    for host in lab.hosts() {
        assert_eq!(healthz(host), "ok v1", "{}", host.name);
        let container = lab.container(&host.name);
        assert!(
            container.ends_with(&format!("-{}", host.name)),
            "{container}"
        );
        let master_title = format!("gunicorn: master [{container}]");
        let pid1 = lab.container_pid1(&host.name);
        let pid1_cmd = cmdline(pid1);
        match host.pid1.as_deref() {
            Some("exec") => {
                assert!(pid1_cmd.starts_with(&master_title), "{pid1_cmd}");
            }
            Some("init") => {
                // podman mounts catatonit as /run/podman-init.
                assert!(
                    pid1_cmd.starts_with("/run/podman-init -- python3 -m gunicorn"),
                    "{pid1_cmd}"
                );
                let kids = children(pid1);
                assert_eq!(kids.len(), 1, "{kids:?}");
                assert!(
                    cmdline(kids[0]).starts_with(&master_title),
                    "{}",
                    cmdline(kids[0])
                );
            }
            Some("shell") => {
                assert!(
                    pid1_cmd.starts_with("/bin/sh -c python3 -m gunicorn"),
                    "{pid1_cmd}"
                );
                let kids = children(pid1);
                assert_eq!(kids.len(), 1, "{kids:?}");
                assert!(
                    cmdline(kids[0]).starts_with(&master_title),
                    "{}",
                    cmdline(kids[0])
                );
                // Inside, too: the shell is PID 1 (no shell exec'd Gunicorn in its place).
                let inside = lab.podman(&["exec", container, "cat", "/proc/1/cmdline"]);
                assert!(stdout(&inside).starts_with("/bin/sh\0-c\0"), "{inside:?}");
            }
            other => panic!("{}: unexpected case {other:?}", host.name),
        }
        // The host's lab.json knows the master, and no pidfile is written.
        assert_eq!(
            host.gunicorn_pid,
            Some(master_of(&lab, host)),
            "{}",
            host.name
        );
        assert!(!host.pidfile.exists(), "{}", host.pidfile.display());
    }
    let status = Herd::new()
        .args(["lab", "status", "--dir"])
        .arg(lab.dir())
        .run();
    status.assert_code(0);
    for host in lab.hosts() {
        let line = format!(
            "container {} (podman, PID 1 {})",
            lab.container(&host.name),
            host.pid1.as_deref().unwrap()
        );
        assert!(status.stdout().contains(&line), "{status}");
    }
}

#[test]
fn hup_replaces_workers_under_exec_and_init_and_does_nothing_under_a_shell() {
    if !can_run_containers("hup") {
        return;
    }
    let _one = one_at_a_time();
    let lab = Lab::up_with_containers(3, 3);
    let before: Vec<(u32, ProcStat, Vec<u32>)> = lab
        .hosts()
        .iter()
        .map(|h| {
            let master = master_of(&lab, h);
            (master, proc_stat(master).unwrap(), full_workers(master))
        })
        .collect();
    let sent = Instant::now();
    for host in lab.hosts() {
        let kill = lab.podman(&["kill", "--signal=HUP", lab.container(&host.name)]);
        assert!(kill.status.success(), "{}: {}", host.name, stderr(&kill));
    }
    // exec and init: the same master (pid and start time), all-new workers.
    for (host, (master, stat, old)) in lab.hosts().iter().zip(&before).take(2) {
        let mut now = Vec::new();
        assert!(
            wait_until(Duration::from_secs(15), || {
                now = children(*master);
                now.len() == 2 && now.iter().all(|pid| !old.contains(pid))
            }),
            "{}: workers of {master} not replaced: {old:?} -> {now:?}",
            host.name
        );
        assert_eq!(
            proc_stat(*master).map(|s| s.start_time),
            Some(stat.start_time)
        );
        assert_eq!(master_of(&lab, host), *master, "{}", host.name);
    }
    let replaced_in = sent.elapsed();
    // shell: the HUP went to the shell, which ignores it. Given three times
    // as long as the others took (and at least 2 s), nothing changed.
    let quiet = (replaced_in * 3).max(Duration::from_secs(2));
    std::thread::sleep(quiet.saturating_sub(sent.elapsed()));
    let (master, stat, old) = &before[2];
    assert_eq!(children(*master), *old, "the shell case's workers changed");
    assert_eq!(
        proc_stat(*master).map(|s| s.start_time),
        Some(stat.start_time)
    );
    assert_eq!(healthz(&lab.hosts()[2]), "ok v1");
    eprintln!(
        "HUP: exec and init replaced their workers within {replaced_in:?}; \
         the shell case's workers were unchanged {:?} after it",
        sent.elapsed()
    );
}

#[test]
fn a_release_switched_on_the_host_is_served_after_hup_in_the_exec_container() {
    if !can_run_containers("release") {
        return;
    }
    let _one = one_at_a_time();
    let lab = Lab::up_with_containers(1, 1);
    let host = host_with(&lab, "exec");
    let master = master_of(&lab, host);
    assert_eq!(healthz(host), "ok v1");
    switch_release(&lab, host, "v2");
    // Workers already running keep v1 until they are replaced.
    assert_eq!(healthz(host), "ok v1");
    let kill = lab.podman(&["kill", "--signal=HUP", lab.container(&host.name)]);
    assert!(kill.status.success(), "{}", stderr(&kill));
    assert!(
        wait_until(Duration::from_secs(15), || healthz(host) == "ok v2"),
        "still {}",
        healthz(host)
    );
    assert_eq!(lab.container_pid1(&host.name), master);
    // No bytecode written by the container's root into the deployed tree.
    assert!(!host.app_dir.join("releases/v2/__pycache__").exists());
}

#[test]
fn app_start_and_sudo_podman_work_for_the_login_account_over_ssh() {
    if !can_run_containers("app_start") {
        return;
    }
    let _one = one_at_a_time();
    let lab = Lab::up_with_containers(2, 1);
    let plain = &lab.hosts()[0];
    let host = &lab.hosts()[1];
    assert!(plain.container.is_none());
    let container = lab.container(&host.name);
    let inventory = fs::read_to_string(lab.inventory()).unwrap();
    let plain_line = inventory.lines().find(|l| l.contains("host01:")).unwrap();
    assert!(plain_line.contains("app_engine: podman"), "{plain_line}");
    let named = plain_line
        .split("app_container: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap();
    assert!(named.ends_with("-host01"), "{plain_line}");
    assert!(!container_exists(named), "{named} exists on a plain host");
    let line = inventory.lines().find(|l| l.contains("host02:")).unwrap();
    assert!(
        line.contains(&format!("app_container: {container}, app_engine: podman")),
        "{line}"
    );
    let start = host.app_dir.join("start-container.sh");
    assert!(
        line.contains(&format!("app_start: {}", start.display())),
        "{line}"
    );

    let inspect = lab.ssh_as(
        lab.user(),
        &host.name,
        &format!("sudo -n podman inspect --format '{{{{.State.Pid}}}}' {container}"),
    );
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    assert_eq!(stdout(&inspect), lab.container_pid1(&host.name).to_string());

    let stop = lab.podman(&["stop", "--time", "3", container]);
    assert!(stop.status.success(), "{}", stderr(&stop));
    assert!(healthz(host).starts_with("error"), "{}", healthz(host));
    let started = lab.ssh_as(lab.user(), &host.name, &start.to_string_lossy());
    assert!(started.status.success(), "{}", stderr(&started));
    assert!(
        wait_until(Duration::from_secs(15), || healthz(host) == "ok v1"),
        "after app_start: {}",
        healthz(host)
    );
}

#[test]
fn down_removes_this_labs_containers_and_their_processes_only() {
    if !can_run_containers("down") {
        return;
    }
    let _one = one_at_a_time();
    let other = Lab::up_with_containers(1, 1);
    let lab = Lab::up_with_containers(3, 3);
    let processes: Vec<u32> = lab
        .hosts()
        .iter()
        .flat_map(|h| tree(lab.container_pid1(&h.name)))
        .collect();
    assert!(processes.len() >= 9, "{processes:?}");
    let rootfs_mtime = fs::metadata(ROOTFS).unwrap().modified().unwrap();
    let down = Herd::new()
        .args(["lab", "down", "--dir"])
        .arg(lab.dir())
        .run();
    down.assert_code(0);
    for host in lab.hosts() {
        assert!(
            !container_exists(lab.container(&host.name)),
            "{}",
            host.name
        );
    }
    let left: Vec<u32> = processes.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
    // The other lab's container runs on; image and cache stay.
    let survivor = &other.hosts()[0];
    assert!(container_pid1(other.container(&survivor.name)).is_some());
    assert_eq!(healthz(survivor), "ok v1");
    assert!(podman(&["image", "exists", IMAGE]).status.success());
    assert_eq!(
        fs::metadata(ROOTFS).unwrap().modified().unwrap(),
        rootfs_mtime
    );
}

#[test]
fn a_later_lab_reuses_the_cached_image_without_mmdebstrap() {
    if !can_run_containers("reuse") {
        return;
    }
    let _one = one_at_a_time();
    drop(Lab::up_with_containers(1, 1)); // the image exists from here on
    let rootfs_mtime = fs::metadata(ROOTFS).unwrap().modified().unwrap();
    let image_id = stdout(&podman(&["image", "inspect", "--format", "{{.Id}}", IMAGE]));
    let started = Instant::now();
    let lab = Lab::up_with_containers(3, 3);
    let took = started.elapsed();
    assert_eq!(
        fs::metadata(ROOTFS).unwrap().modified().unwrap(),
        rootfs_mtime
    );
    assert_eq!(
        stdout(&podman(&["image", "inspect", "--format", "{{.Id}}", IMAGE])),
        image_id
    );
    // A rootfs build alone takes tens of seconds.
    assert!(took < Duration::from_secs(15), "warm lab up took {took:?}");
    eprintln!("warm `lab up --hosts 3 --container-hosts 3`: {took:?}");
    assert!(lab.hosts().iter().all(|h| healthz(h) == "ok v1"));
}

#[test]
fn more_container_and_unit_hosts_than_hosts_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = Herd::new()
        .args([
            "lab",
            "up",
            "--hosts",
            "2",
            "--container-hosts",
            "2",
            "--unit-hosts",
            "1",
            "--dir",
        ])
        .arg(dir.path())
        .run();
    run.assert_code(1);
    assert!(
        run.stderr()
            .contains("--container-hosts 2 and --unit-hosts 1 ask for more hosts than the lab's 2"),
        "{run}"
    );
    assert!(!Path::new(dir.path()).join("lab.json").exists());
}

#[test]
fn container_hosts_are_refused_to_a_user_who_is_not_root() {
    if !running_as_root() {
        let dir = tempfile::tempdir().unwrap();
        let run = Herd::new()
            .args([
                "lab",
                "up",
                "--hosts",
                "1",
                "--container-hosts",
                "1",
                "--dir",
            ])
            .arg(dir.path())
            .run();
        run.assert_code(1);
        assert!(
            run.stderr().contains("--container-hosts needs root"),
            "{run}"
        );
        return;
    }
    // As root: the same, run as an unprivileged account.
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(herd_bin())
        .args([
            "lab",
            "up",
            "--hosts",
            "1",
            "--container-hosts",
            "1",
            "--dir",
        ])
        .arg(dir.path().join("lab"))
        .env_remove("HERD_LAB_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runuser runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr(&out),
        "error: --container-hosts needs root: the lab runs its containers on the machine's \
         rootful Podman; run `sudo herd lab up`, or leave out --container-hosts"
    );
    assert!(!dir.path().join("lab").exists());
}

#[test]
fn a_lab_imports_the_cached_rootfs_again_when_the_image_is_gone() {
    if !can_run_containers("import") {
        return;
    }
    let _one = one_at_a_time();
    drop(Lab::up_with_containers(1, 1)); // the rootfs is cached from here on
    let rootfs_mtime = fs::metadata(ROOTFS).unwrap().modified().unwrap();
    let rmi = podman(&["rmi", IMAGE]);
    if !rmi.status.success() {
        // Containers of labs outside this test still use it.
        eprintln!("import: skipped: cannot remove {IMAGE}: {}", stderr(&rmi));
        return;
    }
    let started = Instant::now();
    let lab = Lab::up_with_containers(1, 1);
    let took = started.elapsed();
    assert!(podman(&["image", "exists", IMAGE]).status.success());
    assert_eq!(
        fs::metadata(ROOTFS).unwrap().modified().unwrap(),
        rootfs_mtime,
        "the rootfs was built again"
    );
    assert_eq!(healthz(&lab.hosts()[0]), "ok v1");
    eprintln!(
        "`lab up --hosts 1 --container-hosts 1` with the rootfs cached but no image: {took:?}"
    );
}
