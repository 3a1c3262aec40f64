//! Rolling batches: a failure in one batch rolls that host back and stops the
//! rollout, so later batches are never touched; `once` steps run on a single
//! host per rollout; a captured value drives the rollback.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{dir_state, Lab, Run};

/// Three steps that each leave a marker; step 2 refuses host04 (batch 2 of 4
/// with `--batch 2` on 8 hosts); the rollback leaves its own marker.
const FAILS_IN_BATCH_2: &str = "\
name: Abort in batch 2
hosts: web
rolling:
  max_fail: 0
steps:
  - name: First mark
    run: touch {{ app_dir }}/step1
  - name: Second mark, refusing host04
    run: test {{ inventory_hostname }} != host04 && touch {{ app_dir }}/step2
  - name: Third mark
    run: touch {{ app_dir }}/step3
rollback:
  - name: Note the rollback
    run: touch {{ app_dir }}/rolled-back
";

const MARKERS: [&str; 4] = ["step1", "step2", "step3", "rolled-back"];

/// Which of the markers `app` holds.
fn markers(app: &Path) -> Vec<&'static str> {
    MARKERS
        .iter()
        .copied()
        .filter(|m| app.join(m).exists())
        .collect()
}

/// What each host should hold after the rollout aborts in batch 2.
fn expected_markers(host: &str) -> Vec<&'static str> {
    match host {
        "host01" | "host02" | "host03" => vec!["step1", "step2", "step3"],
        "host04" => vec!["step1", "rolled-back"],
        _ => vec![],
    }
}

fn expected_result(host: &str) -> &'static str {
    match host {
        "host01" | "host02" | "host03" => "done",
        "host04" => "rolled back",
        _ => "untouched",
    }
}

/// Runs the aborting playbook on a fresh 8-host lab; checks the disk of
/// every host (batches 3 and 4 byte for byte unchanged) and returns the run.
fn abort_in_batch_2(lab: &Lab, extra: &[&str]) -> Run {
    let playbook = lab.write("abort.yml", FAILS_IN_BATCH_2);
    let before: BTreeMap<String, _> = lab
        .hosts()
        .iter()
        .map(|h| (h.name.clone(), dir_state(&h.app_dir)))
        .collect();

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--batch", "2"])
        .args(extra)
        .run();

    run.assert_code(1);
    for host in lab.hosts() {
        assert_eq!(
            markers(&host.app_dir),
            expected_markers(&host.name),
            "markers on {}\n{run}",
            host.name
        );
    }
    for name in ["host05", "host06", "host07", "host08"] {
        assert_eq!(
            dir_state(lab.app_dir(name)),
            before[name],
            "{name} (batch 3 or 4) changed on disk\n{run}"
        );
    }
    run
}

#[test]
fn a_failure_in_batch_2_rolls_that_host_back_and_leaves_later_batches_untouched() {
    let lab = Lab::up(8);

    let run = abort_in_batch_2(&lab, &[]);

    for host in lab.hosts() {
        assert_eq!(
            run.summary_result(&host.name),
            expected_result(&host.name),
            "{}\n{run}",
            host.name
        );
    }
    assert!(
        run.stderr()
            .lines()
            .any(|l| l.starts_with("herd: ROLLOUT ABORTED: ")),
        "no ROLLOUT ABORTED line\n{run}"
    );
    // Not one step was even started on a later batch's host.
    for name in ["host05", "host06", "host07", "host08"] {
        assert!(
            !run.stderr()
                .lines()
                .any(|l| l.starts_with(&format!("{name}: ["))),
            "a step of {name} shows in the progress\n{run}"
        );
    }
}

#[test]
fn the_json_report_of_an_aborted_rollout_agrees_with_the_hosts_disks() {
    let lab = Lab::up(8);

    let run = abort_in_batch_2(&lab, &["--output", "json"]);

    let events = run.json_events();
    assert!(
        events.iter().any(|e| e["event"] == "rollout_aborted"),
        "no rollout_aborted event\n{run}"
    );
    let finished: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "run_finished")
        .collect();
    assert_eq!(finished.len(), 1, "{run}");
    let report = &finished[0]["report"];
    assert!(
        report["aborted"].is_string(),
        "report.aborted: {}\n{run}",
        report["aborted"]
    );
    assert_eq!(report["interrupted"], false, "{run}");
    let hosts = report["hosts"].as_array().expect("report.hosts");
    assert_eq!(hosts.len(), 8, "{run}");
    for entry in hosts {
        let name = entry["host"].as_str().unwrap();
        let state = entry["state"].as_str().unwrap();
        let on_disk = markers(lab.app_dir(name));
        // The state a user would infer from the host's disk.
        let from_disk = match on_disk.as_slice() {
            ["step1", "step2", "step3"] => "done",
            ["step1", "rolled-back"] => "rolled_back",
            [] => "untouched",
            other => panic!("{name}: unexpected markers {other:?}\n{run}"),
        };
        assert_eq!(state, from_disk, "{name}: report says {state}\n{run}");
        assert_eq!(
            state,
            expected_result(name).replace(' ', "_"),
            "{name}\n{run}"
        );
    }
    let host04 = hosts.iter().find(|h| h["host"] == "host04").unwrap();
    assert_eq!(host04["failure"]["step"], 2, "{host04}");
    assert_eq!(host04["rollback_ok"], true, "{host04}");
}

#[test]
fn a_once_step_runs_on_exactly_one_host_per_rollout() {
    let lab = Lab::up(4);
    // Shared by every host (they all log in as the same user on this machine),
    // outside the app dirs; the lab dir may not be writable by that user.
    let ledger = lab.write("once.log", "");
    fs::set_permissions(&ledger, fs::Permissions::from_mode(0o666)).unwrap();
    let playbook = lab.write(
        "once.yml",
        "\
name: Once
hosts: web
steps:
  - name: Everywhere
    run: touch {{ app_dir }}/everywhere
  - name: Migrate once
    run: echo {{ inventory_hostname }} >> {{ ledger }}
    once: true
  - name: Everywhere after
    run: touch {{ app_dir }}/after
",
    );

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--batch", "2", "-e"])
        .arg(format!("ledger={}", ledger.display()))
        .run();

    run.assert_code(0);
    let text = fs::read_to_string(&ledger).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "the once step ran {} times: {text:?}\n{run}",
        lines.len()
    );
    // Once per rollout, not once per batch: batch 1 ran it, batch 2 did not.
    assert!(
        ["host01", "host02"].contains(&lines[0]),
        "the once step ran on {}, not in batch 1\n{run}",
        lines[0]
    );
    for host in lab.hosts() {
        assert!(host.app_dir.join("after").exists(), "{}\n{run}", host.name);
        assert_eq!(run.summary_result(&host.name), "done", "{run}");
    }
}

/// DESIGN.md: `once: true` runs "on the first host" of the rollout, so
/// which host runs a migration must not depend on which one gets there
/// first. host01 is held back on step 1 so that host02 reaches the once step
/// before it.
#[test]
fn a_once_step_runs_on_the_first_host_even_when_another_gets_there_first() {
    let lab = Lab::up(2);
    let ledger = lab.write("once.log", "");
    fs::set_permissions(&ledger, fs::Permissions::from_mode(0o666)).unwrap();
    let playbook = lab.write(
        "once-first.yml",
        "\
name: Once, first host
hosts: web
rolling:
  batch: 100%
steps:
  - name: Hold host01 back
    run: if [ {{ inventory_hostname }} = host01 ]; then sleep 1; fi
  - name: Migrate once
    run: echo {{ inventory_hostname }} >> {{ ledger }}
    once: true
",
    );

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-e"])
        .arg(format!("ledger={}", ledger.display()))
        .run();

    run.assert_code(0);
    assert_eq!(fs::read_to_string(&ledger).unwrap(), "host01\n", "{run}");
}

#[test]
fn the_rollback_restores_the_captured_release_after_the_symlink_switched() {
    let lab = Lab::up(2);
    let playbook = lab.write(
        "switch.yml",
        "\
name: Switch then fail
hosts: web
rolling:
  batch: 100%
  max_fail: 0
steps:
  - name: Remember the running release
    run: readlink -f {{ app_dir }}/current
    capture: previous
  - name: Build v2
    run: mkdir -p {{ app_dir }}/releases/v2 && cp {{ previous }}/app.py {{ app_dir }}/releases/v2/
  - name: Switch the current release
    run: ln -sfn {{ app_dir }}/releases/v2 {{ app_dir }}/current.next && mv -T {{ app_dir }}/current.next {{ app_dir }}/current
  - name: Smoke test, refusing host02
    run: test {{ inventory_hostname }} != host02
rollback:
  - name: Point current back at the previous release
    run: ln -sfn {{ previous }} {{ app_dir }}/current.next && mv -T {{ app_dir }}/current.next {{ app_dir }}/current
",
    );
    for host in lab.hosts() {
        // The lab's link is relative; the captured value is readlink -f's absolute path.
        assert_eq!(
            fs::read_link(host.app_dir.join("current")).unwrap(),
            Path::new("releases/v1")
        );
    }

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(1);
    let host01 = lab.app_dir("host01");
    assert_eq!(
        fs::read_link(host01.join("current")).unwrap(),
        host01.join("releases/v2"),
        "host01 should be on v2\n{run}"
    );
    assert_eq!(run.summary_result("host01"), "done", "{run}");
    let host02 = lab.app_dir("host02");
    assert!(
        host02.join("releases/v2/app.py").exists(),
        "host02 never built v2\n{run}"
    );
    // Back on v1, through the absolute path the first step captured: the
    // rollback, not the lab's original relative link.
    let v1 = fs::canonicalize(host02.join("releases/v1")).unwrap();
    assert_eq!(
        fs::read_link(host02.join("current")).unwrap(),
        v1,
        "host02's current was not restored to the captured release\n{run}"
    );
    assert_eq!(run.summary_result("host02"), "rolled back", "{run}");
}

/// Kills every SSH session of `host`'s sshd (the sshd itself keeps
/// listening), as a dropped connection would end them.
fn cut_sessions(host: &common::LabHost) -> bool {
    let sshd = host.sshd_pid.expect("the lab knows its sshd");
    let mut sessions = common::children(sshd);
    let mut next = 0;
    while next < sessions.len() {
        sessions.extend(common::children(sessions[next]));
        next += 1;
    }
    for pid in &sessions {
        // SAFETY: a plain kill(2) of an sshd session of this test's lab.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
    }
    !sessions.is_empty()
}

/// Runs `playbook` on a lab of one, cuts its SSH sessions once `marker`
/// (a file in app_dir) exists, and checks that the host was rolled back
/// over a new connection (the rollback writes `rolled-back`); returns the
/// run.
fn cut_while_running_and_rolled_back(lab: &Lab, playbook: &Path, marker: &str) -> Run {
    let app = lab.app_dir("host01").to_path_buf();
    let running = lab.herd(["run"]).arg(playbook).spawn();
    assert!(
        common::wait_until(std::time::Duration::from_secs(20), || app
            .join(marker)
            .exists()),
        "{marker} never appeared"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(cut_sessions(lab.host("host01")), "no session to cut");
    let run = running.wait();

    run.assert_code(1);
    assert!(app.join("rolled-back").exists(), "no rollback ran\n{run}");
    assert!(
        run.stderr()
            .lines()
            .any(|l| l.starts_with("host01: rollback [1/1] Switch back: ok")),
        "{run}"
    );
    assert_eq!(run.summary_result("host01"), "rolled back", "{run}");
    assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new(), "{run}");
    run
}

#[test]
fn a_step_cut_off_by_a_dropped_connection_is_rolled_back_over_a_new_one() {
    let lab = Lab::up(1);
    let playbook = lab.write(
        "cut.yml",
        "hosts: web\nsteps:\n  - name: Switch\n    run: ln -sfn releases/v2 {{ app_dir }}/current && touch {{ app_dir }}/switched\n  - name: Long\n    run: sleep 30\nrollback:\n  - name: Switch back\n    run: ln -sfn releases/v1 {{ app_dir }}/current && touch {{ app_dir }}/rolled-back\n",
    );

    let run = cut_while_running_and_rolled_back(&lab, &playbook, "switched");

    assert_eq!(
        fs::read_link(lab.app_dir("host01").join("current")).unwrap(),
        Path::new("releases/v1"),
        "{run}"
    );
}

#[test]
fn a_preflight_cut_off_by_a_dropped_connection_is_rolled_back_over_a_new_one() {
    let lab = Lab::up(1);
    let playbook = lab.write(
        "cut-preflight.yml",
        "hosts: web\nsteps:\n  - name: Switch\n    run: ln -sfn releases/v2 {{ app_dir }}/current\nrollback:\n  - name: Switch back\n    run: ln -sfn releases/v1 {{ app_dir }}/current && touch {{ app_dir }}/rolled-back\nreload:\n  pidfile: \"{{ gunicorn_pidfile }}\"\n  preflight: touch {{ app_dir }}/checking && sleep 30\n",
    );
    let master = common::read_pid(&lab.host("host01").pidfile).expect("a master");

    let run = cut_while_running_and_rolled_back(&lab, &playbook, "checking");

    // Nothing was signalled: the same master runs.
    assert_eq!(
        common::read_pid(&lab.host("host01").pidfile),
        Some(master),
        "{run}"
    );
}
