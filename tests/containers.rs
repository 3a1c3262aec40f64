//! Reloading Gunicorn inside real Podman containers on the lab's hosts: the
//! master as the container's PID 1, or as the child of an init, reloaded
//! through the engine with the same proofs as anywhere (same master, every
//! worker replaced, the container not restarted, the new release served); a
//! shell as PID 1 refused, since it would swallow the signal; and a broken
//! release that stops the container, rolled back and started again while
//! the later batches stay untouched.
//!
//! Only a lab started as root has container hosts.

mod common;

use std::path::{Path, PathBuf};
use std::sync::MutexGuard;
use std::time::Duration;

use common::{
    alive, children, healthz, one_at_a_time, proc_stat, switch_release, wait_until, Lab, LabHost,
    ProcStat, Run,
};

/// A lab of `hosts` whose last `containers` hosts run Gunicorn in Podman
/// containers (PID 1 cases in order: exec, init, shell); `None` (skipped,
/// saying why) where containers cannot run.
fn container_lab(hosts: usize, containers: usize) -> Option<(MutexGuard<'static, ()>, Lab)> {
    if !common::can_run_containers("containers") {
        return None;
    }
    let one = one_at_a_time();
    Some((one, Lab::up_with_containers(hosts, containers)))
}

/// The container's PID 1, as the host numbers it.
fn pid1(lab: &Lab, host: &str) -> u32 {
    let out = lab.podman(&["inspect", "--format", "{{.State.Pid}}", lab.container(host)]);
    assert!(out.status.success(), "podman inspect: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{host}: PID 1: {e}"))
}

/// The container's start time and restart count, as the engine says.
fn started(lab: &Lab, host: &str) -> String {
    let out = lab.podman(&[
        "inspect",
        "--format",
        "{{.State.StartedAt}} {{.RestartCount}}",
        lab.container(host),
    ]);
    assert!(out.status.success(), "podman inspect: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The master in `host`'s container (PID 1, or PID 1's one child) once it
/// has its two workers.
fn master(lab: &Lab, host: &LabHost) -> (ProcStat, Vec<u32>) {
    let mut seen = None;
    let settled = wait_until(Duration::from_secs(20), || {
        let one = pid1(lab, &host.name);
        let master = match host.pid1.as_deref() {
            Some("exec") => one,
            _ => match children(one).as_slice() {
                [only] => *only,
                _ => return false,
            },
        };
        let Some(stat) = proc_stat(master) else {
            return false;
        };
        let workers = children(master);
        let full = workers.len() == 2;
        seen = Some((stat, workers));
        full
    });
    assert!(settled, "{}: no master with 2 workers: {seen:?}", host.name);
    seen.expect("seen")
}

fn reload_playbook(lab: &Lab, extra: &str) -> PathBuf {
    playbook(lab, "container.yml", "", extra)
}

/// A deploy that builds `releases/{{ release }}` from v1's code beside the
/// running one and switches `current` to it: the code the container mounts.
const DEPLOY_STEPS: &str = "steps:\n  \
     - name: Build the release\n    \
       run: mkdir -p {{ app_dir }}/releases/{{ release }} && cp {{ app_dir }}/releases/v1/app.py {{ app_dir }}/releases/{{ release }}/ && echo {{ release }} > {{ app_dir }}/releases/{{ release }}/RELEASE\n  \
     - name: Switch current\n    \
       run: ln -sfn releases/{{ release }} {{ app_dir }}/current.next && mv -T {{ app_dir }}/current.next {{ app_dir }}/current\n";

/// A playbook of `steps` that reloads the host's container (`extra` goes in
/// `reload`) and proves `{{ release }}` serves.
fn playbook(lab: &Lab, file: &str, steps: &str, extra: &str) -> PathBuf {
    lab.write(
        file,
        &format!(
            "hosts: web\nvars:\n  release: v1\n{steps}\
             reload:\n  container: \"{{{{ app_container }}}}\"\n  engine: podman\n  become: true\n  start: \"{{{{ app_start }}}}\"\n{extra}\
             validate:\n  timeout: 30s\n  settle: 1s\n  \
             http: {{ url: \"http://{{{{ ansible_host }}}}:{{{{ http_port }}}}/healthz\", status: 200, contains: \"{{{{ release }}}}\" }}\n"
        ),
    )
}

/// Asserts the master seen `before` (pid and start time) still runs `host`'s
/// container and every one of its old workers is gone, replaced.
fn assert_reloaded(lab: &Lab, host: &LabHost, before: &(ProcStat, Vec<u32>), run: &Run) {
    let (old, old_workers) = before;
    let (now, workers) = master(lab, host);
    assert_eq!(
        (now.pid, now.start_time),
        (old.pid, old.start_time),
        "{}: another master\n{run}",
        host.name
    );
    assert!(
        old_workers
            .iter()
            .all(|w| !alive(*w) && !workers.contains(w)),
        "{}: old workers {old_workers:?}, now {workers:?}\n{run}",
        host.name
    );
}

/// The one `reload_finished` event of `host`.
fn reload_event(run: &Run, host: &str) -> serde_json::Value {
    let events: Vec<serde_json::Value> = run
        .json_events()
        .into_iter()
        .filter(|e| e["event"] == "reload_finished" && e["host"] == host && e["rollback"] == false)
        .collect();
    assert_eq!(events.len(), 1, "{host}: {events:?}\n{run}");
    events[0].clone()
}

#[test]
fn the_master_as_pid_1_or_under_an_init_is_reloaded_through_the_engine() {
    let Some((_one, lab)) = container_lab(3, 2) else {
        return;
    };
    let playbook = reload_playbook(&lab, "");
    let deploy = self::playbook(&lab, "deploy.yml", DEPLOY_STEPS, "");
    // `herd check` says which container and which PID 1 case it found.
    let check = lab
        .herd(["check"])
        .arg("--playbook")
        .arg(&playbook)
        .args(["-l", "host02,host03"])
        .run();
    check.assert_code(0);
    for (host, how) in [
        (
            "host02",
            format!("PID 1 of container {}", lab.container("host02")),
        ),
        (
            "host03",
            format!(
                "child of PID 1 (podman-init) of container {}",
                lab.container("host03")
            ),
        ),
    ] {
        assert!(
            check.stdout().lines().any(|l| l.starts_with(host)
                && l.contains(&how)
                && l.contains("signal by container-kill")),
            "{host}: wanted {how:?}\n{check}"
        );
    }

    for name in ["host02", "host03"] {
        let host = lab.host(name);
        let (before, old_workers) = master(&lab, host);
        let container_started = started(&lab, name);
        // The deploy changes the code the container mounts, then reloads.
        let run = lab
            .herd(["run"])
            .arg(&deploy)
            .args(["-l", name, "-e", "release=v2", "--output", "json"])
            .run();
        run.assert_code(0);
        let event = reload_event(&run, name);
        assert_eq!(event["delivery"], "container-kill", "{run}");
        assert_eq!(event["master_pid"], before.pid, "{run}");
        assert_eq!(event["signals"][0]["via"], "container-kill", "{run}");
        assert_reloaded(&lab, host, &(before, old_workers), &run);
        assert_eq!(
            started(&lab, name),
            container_started,
            "{name}: restarted\n{run}"
        );
        assert_eq!(healthz(host), "ok v2", "{run}");
    }
}

/// Runs `playbook` on `name`, which must fail with every text of `wanted`
/// in its output, and leave the host as it was: the same master, the same
/// workers, a moment later too.
fn assert_refused_and_untouched(lab: &Lab, name: &str, playbook: &Path, wanted: &[String]) {
    let host = lab.host(name);
    let (before, workers) = master(lab, host);
    let run = lab.herd(["run"]).arg(playbook).args(["-l", name]).run();
    run.assert_code(1);
    for text in wanted {
        assert!(
            run.stderr().contains(text.as_str()),
            "wanted {text:?}\n{run}"
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (after, now) = master(lab, host);
    assert_eq!(
        (after.pid, after.start_time),
        (before.pid, before.start_time),
        "{run}"
    );
    assert_eq!(now, workers, "{run}");
    assert_eq!(healthz(host), "ok v1", "{run}");
}

#[test]
fn a_shell_as_pid_1_is_refused_and_nothing_is_signalled() {
    let Some((_one, lab)) = container_lab(3, 3) else {
        return;
    };
    assert_eq!(lab.host("host03").pid1.as_deref(), Some("shell"));
    let shell = common::cmdline(pid1(&lab, "host03"));
    assert!(
        shell.starts_with("/bin/sh -c python3 -m gunicorn"),
        "{shell}"
    );
    assert_refused_and_untouched(
        &lab,
        "host03",
        &reload_playbook(&lab, ""),
        &[
            format!(
                "host03: reload FAILED: proof `master`: PID 1 of the container {} is a shell (`{}…",
                lab.container("host03"),
                &shell[..50]
            ),
            "which does not pass HUP on to Gunicorn: the reload would silently do nothing. \
             Make Gunicorn PID 1 (the exec form of CMD"
                .to_string(),
        ],
    );
}

/// The broken release's app exits as it is imported (`SystemExit(3)`, which
/// Gunicorn reads as a worker that cannot boot): the master exits, and so
/// does the container whose PID 1 it is.
#[test]
fn a_broken_release_stops_the_container_and_the_rollback_starts_it_again() {
    let Some((_one, lab)) = container_lab(2, 2) else {
        return;
    };
    let (first, second) = (lab.host("host01"), lab.host("host02"));
    assert_eq!(first.pid1.as_deref(), Some("exec"));
    let (second_master, second_workers) = master(&lab, second);
    let playbook = lab.write(
        "broken.yml",
                    "hosts: web\nrolling:\n  batch: 1\n\
             steps:\n  - name: Remember\n    run: readlink -f {{ app_dir }}/current\n    capture: previous\n  \
             - name: Broken release\n    run: mkdir -p {{ app_dir }}/releases/v2 && echo 'raise SystemExit(3)' > {{ app_dir }}/releases/v2/app.py && echo v2 > {{ app_dir }}/releases/v2/RELEASE && ln -sfn releases/v2 {{ app_dir }}/current\n\
             rollback:\n  - run: ln -sfn {{ previous }} {{ app_dir }}/current\n\
             reload:\n  container: \"{{ app_container }}\"\n  engine: podman\n  become: true\n  start: \"{{ app_start }}\"\n\
             validate:\n  timeout: 20s\n  settle: 1s\n  \
             http: { url: \"http://{{ ansible_host }}:{{ http_port }}/healthz\", status: 200, contains: v2 }\n",
    );
    let run = lab.herd(["run"]).arg(&playbook).run();
    run.assert_code(1);
    assert_eq!(run.summary_result("host01"), "rolled back", "{run}");
    assert_eq!(run.summary_result("host02"), "untouched", "{run}");
    // host01 serves the previous release from a container started again.
    assert!(
        wait_until(Duration::from_secs(20), || healthz(first) == "ok v1"),
        "host01 serves {}\n{run}",
        healthz(first)
    );
    assert!(run.stderr().contains("started with reload.start"), "{run}");
    // host02, in the next batch, was never touched.
    let (now, workers) = master(&lab, second);
    assert_eq!(
        (now.pid, now.start_time),
        (second_master.pid, second_master.start_time)
    );
    assert_eq!(workers, second_workers);
    assert_eq!(healthz(second), "ok v1");
}

/// Every lab container that can be reloaded belongs to the Compose service
/// `web` of a project named after the lab (the shell case is a service of
/// its own), all on this machine's one engine: a reload of that service from
/// any host reaches each of its containers in turn.
#[test]
fn each_container_of_a_compose_service_is_reloaded_in_turn_and_proven() {
    let Some((_one, lab)) = container_lab(3, 2) else {
        return;
    };
    let names = [lab.container("host02"), lab.container("host03")];
    let project = names[0]
        .strip_suffix("-host02")
        .expect("a container is named after its lab and host");
    let mut before = Vec::new();
    for name in ["host02", "host03"] {
        let host = lab.host(name);
        before.push(master(&lab, host));
        switch_release(&lab, host, "v2");
    }
    let playbook = lab.write(
        "compose.yml",
        &format!(
            "hosts: web\n\
             reload:\n  compose: {{ project: {project}, service: web }}\n  engine: podman\n  become: true\n\
             validate:\n  timeout: 30s\n  settle: 1s\n"
        ),
    );
    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-l", "host02", "--output", "json"])
        .run();
    run.assert_code(0);
    let event = reload_event(&run, "host02");
    assert_eq!(event["containers"], serde_json::json!(names), "{run}");
    let signals = event["signals"].as_array().cloned().unwrap_or_default();
    assert_eq!(signals.len(), 2, "{run}");
    for ((name, (old, old_workers)), signal) in
        ["host02", "host03"].iter().zip(&before).zip(&signals)
    {
        assert_eq!(signal["pid"], old.pid, "{run}");
        assert_eq!(signal["via"], "container-kill", "{run}");
        let (now, workers) = master(&lab, lab.host(name));
        assert_eq!(
            (now.pid, now.start_time),
            (old.pid, old.start_time),
            "{name}\n{run}"
        );
        assert!(
            old_workers
                .iter()
                .all(|w| !alive(*w) && !workers.contains(w)),
            "{name}: {old_workers:?} -> {workers:?}\n{run}"
        );
        assert_eq!(healthz(lab.host(name)), "ok v2", "{run}");
    }
    // A service with no container on the host says which labels it looked for.
    let none = lab.write(
        "compose-none.yml",
        &format!(
            "hosts: web\nreload:\n  compose: {{ project: {project}, service: api }}\n  engine: podman\n  become: true\n"
        ),
    );
    let run = lab.herd(["run"]).arg(&none).args(["-l", "host02"]).run();
    run.assert_code(1);
    assert!(
        run.stderr().contains(&format!(
            "host02: reload FAILED: proof `master`: no podman container of the Compose service api in project {project} on this host"
        )),
        "{run}"
    );
}

/// USR2 starts a new master as the old one's child; where the old master is
/// PID 1, the container stops when it exits: refused, nothing signalled.
#[test]
fn usr2_is_refused_where_the_master_is_pid_1() {
    let Some((_one, lab)) = container_lab(2, 1) else {
        return;
    };
    assert_eq!(lab.host("host02").pid1.as_deref(), Some("exec"));
    assert_refused_and_untouched(
        &lab,
        "host02",
        &reload_playbook(&lab, "  signal: USR2\n"),
        &[format!(
            "host02: reload FAILED: proof `master`: `signal: USR2` is refused in the container {}: its PID 1 is the master, and when the old master exits the container stops; nothing was signalled",
            lab.container("host02")
        )],
    );
}

/// Without `engine`, herd takes the CLI the host has; with both Docker's
/// and Podman's installed (this machine may ship a docker client), it
/// refuses to guess.
#[test]
fn without_engine_the_hosts_one_cli_is_used_and_two_are_refused() {
    let Some((_one, lab)) = container_lab(2, 1) else {
        return;
    };
    let playbook = lab.write(
        "auto-engine.yml",
        "hosts: web\nreload:\n  container: \"{{ app_container }}\"\n  become: true\n",
    );
    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-l", "host02"])
        .run();
    let login_path_has_docker = lab
        .ssh_as(lab.user(), "host02", "command -v docker")
        .status
        .success();
    if login_path_has_docker {
        run.assert_code(1);
        assert!(
            run.stderr().contains(
                "host02: reload FAILED: proof `master`: both docker and podman are installed on this host: choose one with `engine`"
            ),
            "{run}"
        );
    } else {
        run.assert_code(0);
    }
}

/// A PID 1 that is neither the master, an init nor a shell (here a Python
/// wrapper that runs Gunicorn and, as PID 1 without handlers, ignores HUP):
/// herd signals the master from inside the container, by the pid the
/// container knows it by.
#[test]
fn under_another_pid_1_the_master_is_signalled_from_inside_the_container() {
    let Some((_one, lab)) = container_lab(2, 1) else {
        return;
    };
    let host = lab.host("host02");
    let name = lab.container("host02");
    let config = |format: &str| {
        let out = lab.podman(&["inspect", "--format", format, name]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let command: Vec<String> = serde_json::from_str(&config("{{json .Config.Cmd}}"))
        .expect("the container's command as JSON");
    let labels = config("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}");
    let image = config("{{.ImageName}}");
    let removed = lab.podman(&["rm", "-f", "-t", "0", name]);
    assert!(removed.status.success(), "{removed:?}");
    let app = host.app_dir.display().to_string();
    let mut run_args: Vec<String> = [
        "run",
        "--detach",
        "--pull=never",
        "--network=host",
        "--name",
        name,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for label in labels.split_whitespace() {
        run_args.push("--label".into());
        run_args.push(label.into());
    }
    run_args.extend([
        "--volume".into(),
        format!("{app}:{app}"),
        "--workdir".into(),
        app.clone(),
        image,
        "python3".into(),
        "-c".into(),
        "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))".into(),
    ]);
    run_args.extend(command);
    let args: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let started = lab.podman(&args);
    assert!(started.status.success(), "{started:?}");
    let wrapper = pid1(&lab, "host02");
    assert!(
        common::cmdline(wrapper).starts_with("python3 -c import subprocess"),
        "{}",
        common::cmdline(wrapper)
    );
    let under = LabHost {
        pid1: Some("other".into()),
        ..host.clone()
    };
    let (before, old_workers) = master(&lab, &under);

    let deploy = playbook(&lab, "deploy-other.yml", DEPLOY_STEPS, "");
    let run = lab
        .herd(["run"])
        .arg(&deploy)
        .args(["-l", "host02", "-e", "release=v2", "--output", "json"])
        .run();
    run.assert_code(0);
    let event = reload_event(&run, "host02");
    assert_eq!(event["delivery"], "container-exec", "{run}");
    assert_eq!(event["signals"][0]["via"], "container-exec", "{run}");
    assert_eq!(event["signals"][0]["pid"], before.pid, "{run}");
    assert_reloaded(&lab, &under, &(before, old_workers), &run);
    assert_eq!(
        pid1(&lab, "host02"),
        wrapper,
        "the wrapper was replaced\n{run}"
    );
    assert_eq!(healthz(host), "ok v2", "{run}");
}

/// `herd plan` says, per host, how its container's master will be found
/// and signalled; it contacts nothing.
#[test]
fn plan_says_how_each_containers_master_is_signalled() {
    let dir = tempfile::tempdir().unwrap();
    common::write_file(
        dir.path(),
        "inventory.yml",
        "all:\n  children:\n    web:\n      hosts:\n        web1: { ansible_host: 127.0.0.1, ansible_port: 1, name_of_app: shop-web }\n",
    );
    common::write_file(
        dir.path(),
        "playbook.yml",
        "hosts: web\nreload:\n  container: \"{{ name_of_app }}\"\n  engine: docker\n  become: true\n",
    );
    let run = common::Herd::new()
        .current_dir(dir.path())
        .args(["plan", "playbook.yml", "-i", "inventory.yml"])
        .run();
    run.assert_code(0);
    assert!(
        run.stdout().contains(
            "    reload: `sudo docker kill --signal=HUP shop-web` when PID 1 of the container is the Gunicorn master or an init that forwards it; \
             `sudo docker exec shop-web sh -c 'kill -s HUP PID'` when PID 1 is another process; refused when PID 1 is a shell"
        ),
        "{run}"
    );
}
