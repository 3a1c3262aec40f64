//! `herd run`: a playbook's steps on every host, in batches; a failing host
//! stops at the failed step and runs `rollback`; captured output feeds later
//! steps; `--output json` reports what happened, one event per line.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{repo, Lab};

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn the_example_deploy_releases_v2_on_every_host() {
    let lab = Lab::up(4);
    let settings = read(&repo().join("playbooks/files/settings.ini"));

    let run = lab
        .herd(["run"])
        .arg(repo().join("playbooks/deploy.yml"))
        .args(["-e", "release=v2"])
        .run();

    run.assert_code(0);
    for host in lab.hosts() {
        let app = &host.app_dir;
        let current = fs::canonicalize(app.join("current")).unwrap();
        assert_eq!(
            current,
            fs::canonicalize(app.join("releases/v2")).unwrap(),
            "{}\n{run}",
            host.name
        );
        assert_eq!(
            read(&app.join("releases/v2/RELEASE")).trim_end(),
            "v2",
            "{}",
            host.name
        );
        assert_eq!(
            read(&app.join("releases/v2/app.py")),
            read(&app.join("releases/v1/app.py")),
            "{}",
            host.name
        );
        let shipped = app.join("shared/settings.ini");
        assert_eq!(read(&shipped), settings, "{}", host.name);
        let mode = fs::metadata(&shipped).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640, "{}: settings.ini mode {mode:o}", host.name);
        assert_eq!(run.summary_result(&host.name), "done", "{run}");
    }
}

/// Step 2 fails on host02 only; steps 1 and 3 and the rollback leave files
/// that show on disk what ran where.
const FAILS_ON_HOST02: &str = "\
name: Fail on one host
hosts: web
rolling:
  batch: 100%
  max_fail: 0
steps:
  - name: First mark
    run: touch {{ app_dir }}/step1
  - name: Refuse host02
    run: test {{ inventory_hostname }} != host02
  - name: Third mark
    run: touch {{ app_dir }}/step3
rollback:
  - name: Note the rollback
    run: touch {{ app_dir }}/rolled-back
";

#[test]
fn a_failed_step_stops_that_host_and_runs_its_rollback() {
    let lab = Lab::up(3);
    let playbook = lab.write("fail.yml", FAILS_ON_HOST02);

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(1);
    let failed = lab.app_dir("host02");
    assert!(
        failed.join("step1").exists(),
        "step 1 did not run on host02\n{run}"
    );
    assert!(
        !failed.join("step3").exists(),
        "step 3 ran on host02 after step 2 failed\n{run}"
    );
    assert!(
        failed.join("rolled-back").exists(),
        "rollback did not run on host02\n{run}"
    );
    for name in ["host01", "host03"] {
        let app = lab.app_dir(name);
        assert!(app.join("step3").exists(), "{name} did not finish\n{run}");
        assert!(
            !app.join("rolled-back").exists(),
            "rollback ran on healthy {name}\n{run}"
        );
        assert_eq!(run.summary_result(name), "done", "{run}");
    }
    // The report names the host's state, the step and how it failed.
    assert_eq!(run.summary_result("host02"), "rolled back", "{run}");
    let row = run.summary_row("host02");
    assert!(row.contains("step 2 \"Refuse host02\""), "{run}");
    assert!(
        row.contains("code 1"),
        "summary row lacks the exit code: {row}\n{run}"
    );
    assert!(row.contains("rollback ok"), "{run}");
    assert!(
        run.stderr()
            .lines()
            .any(|l| l == "host02: [2/3] Refuse host02: FAILED: exit code 1"
                || l.starts_with("host02: [2/3] Refuse host02: FAILED: exit code 1 (")),
        "{run}"
    );
}

#[test]
fn a_captured_output_is_a_variable_of_later_steps() {
    let lab = Lab::up(2);
    let playbook = lab.write(
        "capture.yml",
        "\
name: Capture
hosts: web
steps:
  - name: Read the running release
    run: printf '%s-%s\\n' \"$(cat current/RELEASE)\" {{ inventory_hostname }}
    cwd: \"{{ app_dir }}\"
    capture: running
  - name: Write it down
    run: printf '%s' {{ running }} > {{ app_dir }}/captured
",
    );

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(0);
    for host in lab.hosts() {
        // The trailing newline of the captured output is not part of the value.
        assert_eq!(
            read(&host.app_dir.join("captured")),
            format!("v1-{}", host.name),
            "{run}"
        );
    }
}

#[test]
fn json_output_is_one_event_per_line_and_the_final_states_match_the_hosts() {
    let lab = Lab::up(3);
    let playbook = lab.write(
        "json.yml",
        "\
name: Json
hosts: web
rolling:
  batch: 100%
  max_fail: 1
steps:
  - name: Refuse host03
    run: test {{ inventory_hostname }} != host03
  - name: Mark
    run: touch {{ app_dir }}/marker
",
    );

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--output", "json"])
        .run();

    run.assert_code(1);
    let events = run.json_events();
    assert!(!events.is_empty(), "{run}");
    for event in &events {
        assert!(event["event"].is_string(), "event without a name: {event}");
        assert_eq!(event["schema"], 1, "{event}");
    }
    assert_eq!(events.first().unwrap()["event"], "run_started", "{run}");
    let finished: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "run_finished")
        .collect();
    assert_eq!(finished.len(), 1, "{run}");
    assert_eq!(events.last().unwrap()["event"], "run_finished", "{run}");

    let hosts = finished[0]["report"]["hosts"]
        .as_array()
        .expect("report.hosts");
    assert_eq!(hosts.len(), 3, "{run}");
    for report in hosts {
        let name = report["host"].as_str().unwrap();
        let state = report["state"].as_str().unwrap();
        let marked = lab.app_dir(name).join("marker").exists();
        assert_eq!(
            state == "done",
            marked,
            "{name}: state {state}, marker on disk: {marked}\n{run}"
        );
        let expected = if name == "host03" { "failed" } else { "done" };
        assert_eq!(state, expected, "{name}\n{run}");
    }
    let host03 = hosts.iter().find(|h| h["host"] == "host03").unwrap();
    assert_eq!(host03["failure"]["step"], 1, "{host03}");
    assert_eq!(host03["failure"]["exit_code"], 1, "{host03}");
    // Every host's step 1 has a step_finished event; step 2 never finished on host03.
    let finished_steps = |host: &str| -> Vec<u64> {
        events
            .iter()
            .filter(|e| e["event"] == "step_finished" && e["host"] == host)
            .map(|e| e["step"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(finished_steps("host01"), vec![1, 2]);
    assert_eq!(finished_steps("host03"), vec![1]);
}

#[test]
fn a_step_past_its_timeout_fails_and_is_stopped_on_the_host() {
    let lab = Lab::up(1);
    let playbook = lab.write(
        "slow.yml",
        "hosts: web\nsteps:\n  - name: Slow\n    run: sleep 4; touch {{ app_dir }}/late-marker\n    timeout: 1s\n",
    );

    let started = std::time::Instant::now();
    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{run}"
    );
    assert!(
        run.stderr()
            .contains("host01: [1/1] Slow: FAILED: the command timed out after 1s"),
        "{run}"
    );
    // sshd sent the command TERM: what it would have done later never happens.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(!lab.app_dir("host01").join("late-marker").exists());
}

#[test]
fn become_on_a_host_where_sudo_wants_a_password_fails_at_once() {
    let lab = Lab::up(1);
    let playbook = lab.write(
        "become.yml",
        "hosts: web\nsteps:\n  - name: As root\n    run: touch {{ app_dir }}/as-root\n    become: true\n",
    );

    let started = std::time::Instant::now();
    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{run}"
    );
    assert!(
        run.stderr().contains("host01: [1/1] As root: FAILED: become: sudo needs a password on this host (herd uses sudo -n)"),
        "{run}"
    );
    assert!(!lab.app_dir("host01").join("as-root").exists());
}

/// As root, the lab lets its login account become `herd-lab-app` (and no
/// one else) without a password.
#[test]
fn become_user_runs_the_step_as_that_user_and_hands_it_the_step_unchanged() {
    if !lab_has_an_account_to_become() {
        return;
    }
    let lab = Lab::up(1);
    let playbook = lab.write(
        "become-app.yml",
        "hosts: web\nsteps:\n  - name: As the app\n    run: printf '%s|%s|%s\\n' \"$(id -un)\" \"$HOME\" {{ note }}\n    become: true\n    become_user: herd-lab-app\n",
    );

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-e", "note=it's $(not run)", "--output", "json"])
        .run();

    run.assert_code(0);
    let stdout: Vec<String> = run
        .json_events()
        .into_iter()
        .filter(|e| e["event"] == "step_finished")
        .filter_map(|e| e["stdout"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        stdout,
        vec!["herd-lab-app|/home/herd-lab-app|it's $(not run)\n".to_string()],
        "{run}"
    );
}

/// An upload under `become` ends up owned by the user become, with its mode;
/// where sudo wants a password it fails at once; either way no staging copy
/// is left in the login user's home.
#[test]
fn an_upload_with_become_user_is_owned_by_that_user_and_leaves_no_staging_file() {
    if !lab_has_an_account_to_become() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let lab = Lab::up(1);
    lab.write("settings.ini", "secret = 42\n");
    let dest = std::path::PathBuf::from("/home/herd-lab-app").join(common::unique("settings"));
    let playbook = lab.write(
        "upload-as-app.yml",
        &format!(
            "hosts: web\nsteps:\n  - name: Ship as the app\n    upload: {{ src: settings.ini, dest: {}, mode: \"0640\" }}\n    become: true\n    become_user: herd-lab-app\n  - name: Ship as root\n    upload: {{ src: settings.ini, dest: /root/herd-should-not-be-here }}\n    become: true\n",
            dest.display()
        ),
    );

    let run = lab.herd(["run"]).arg(&playbook).run();
    let shipped = fs::metadata(&dest);
    let content = fs::read_to_string(&dest);
    let _ = fs::remove_file(&dest);

    run.assert_code(1);
    let shipped = shipped.unwrap_or_else(|e| panic!("{}: {e}\n{run}", dest.display()));
    assert_eq!(content.unwrap(), "secret = 42\n");
    assert_eq!(shipped.mode() & 0o7777, 0o640);
    let app = fs::metadata("/home/herd-lab-app").unwrap();
    assert_eq!(shipped.uid(), app.uid(), "{run}");
    assert!(
        run.stderr().contains("host01: [2/2] Ship as root: FAILED: become: sudo needs a password on this host (herd uses sudo -n)"),
        "{run}"
    );
    assert!(!Path::new("/root/herd-should-not-be-here").exists());
    let login_home = std::path::PathBuf::from(format!("/home/{}", lab.user()));
    let left: Vec<String> = fs::read_dir(&login_home)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".herd-upload"))
        .collect();
    assert!(
        left.is_empty(),
        "staging files left in {}: {left:?}",
        login_home.display()
    );
}

/// Only a lab started as root creates `herd-lab-app` and the sudo rule.
fn lab_has_an_account_to_become() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: only a lab started as root has an account to become");
    }
    root
}
