//! Controller-side work against the real lab: the playbook's `hooks:` run
//! around each batch and at the end with their `HERD_*` variables, and a
//! `local: true` step runs on the controller with the host's variables.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Lab;

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Hooks that append a line each to `hooks.log`, beside the playbook.
const HOOKS: &str = r#"hooks:
  before_batch: echo "before $HERD_BATCH/$HERD_BATCHES [$HERD_BATCH_HOSTS] failed=[$HERD_FAILED_HOSTS] $HERD_COMMAND $(basename "$HERD_PLAYBOOK")" >> hooks.log
  after_batch: echo "after $HERD_BATCH $HERD_OUTCOME [$HERD_BATCH_HOSTS] failed=[$HERD_FAILED_HOSTS]" >> hooks.log
  on_success: echo "success $HERD_OUTCOME [$HERD_HOSTS]" >> hooks.log
  on_failure: echo "failure $HERD_OUTCOME [$HERD_HOSTS] failed=[$HERD_FAILED_HOSTS]" >> hooks.log
"#;

#[test]
fn hooks_run_in_order_and_a_local_step_sees_the_host_variables() {
    let lab = Lab::up(3);
    let playbook = lab.write(
        "hooks.yml",
        &format!(
            "name: Hooks\nhosts: web\nrolling:\n  batch: [1, 100%]\n{HOOKS}steps:
  - name: Read the release
    run: cat current/RELEASE
    cwd: \"{{{{ app_dir }}}}\"
    capture: running
  - name: Note on the controller
    local: true
    run: echo {{{{ inventory_hostname }}}} {{{{ running }}}} \"$PWD\" >> ../local.log
    cwd: notes
  - name: Mark the host
    run: touch {{{{ app_dir }}}}/marked
"
        ),
    );
    fs::create_dir_all(lab.dir().join("notes")).unwrap();

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(0);
    assert_eq!(
        read(&lab.dir().join("hooks.log")),
        "before 1/2 [host01] failed=[] run hooks.yml\n\
         after 1 ok [host01] failed=[]\n\
         before 2/2 [host02 host03] failed=[] run hooks.yml\n\
         after 2 ok [host02 host03] failed=[]\n\
         success ok [host01 host02 host03]\n",
        "{run}"
    );
    // The local step ran once per host, on the controller, in `cwd` taken
    // from the playbook's directory; lines of one batch may interleave.
    let notes = lab.dir().join("notes").canonicalize().unwrap();
    let mut lines: Vec<String> = read(&lab.dir().join("local.log"))
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    let expected: Vec<String> = ["host01", "host02", "host03"]
        .iter()
        .map(|host| format!("{host} v1 {}", notes.display()))
        .collect();
    assert_eq!(lines, expected, "{run}");
    for host in lab.hosts() {
        assert!(host.app_dir.join("marked").exists(), "{}\n{run}", host.name);
        assert!(!host.app_dir.join("notes").exists(), "{}\n{run}", host.name);
    }
    assert!(
        run.stderr()
            .lines()
            .any(|l| l.starts_with("herd: hook before_batch (batch 1): ok (")),
        "{run}"
    );
}

#[test]
fn a_failing_before_batch_hook_fails_its_batch_and_leaves_its_hosts_untouched() {
    let lab = Lab::up(3);
    let playbook = lab.write(
        "drain.yml",
        "name: Drain\nhosts: web\nrolling:\n  batch: [1, 100%]\nhooks:
  before_batch: 'test \"$HERD_BATCH\" = 1 || { echo \"cannot drain $HERD_BATCH_HOSTS\" >&2; exit 4; }'
  on_failure: echo \"$HERD_OUTCOME\" > outcome
steps:
  - run: touch {{ app_dir }}/marked
",
    );

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(1);
    assert!(lab.app_dir("host01").join("marked").exists(), "{run}");
    for name in ["host02", "host03"] {
        assert!(!lab.app_dir(name).join("marked").exists(), "{name}\n{run}");
        assert_eq!(run.summary_result(name), "untouched", "{run}");
    }
    let stderr = run.stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("herd: hook before_batch (batch 2) FAILED: exit code 4 (")),
        "{run}"
    );
    assert!(
        stderr.contains("herd:     cannot drain host02 host03\n"),
        "{run}"
    );
    assert!(
        stderr.contains("herd: ROLLOUT ABORTED: the before_batch hook of batch 2 of 2 failed: exited with code 4\n"),
        "{run}"
    );
    assert!(
        run.summary_row("host02")
            .contains("the before_batch hook failed (exited with code 4): nothing ran"),
        "{run}"
    );
    assert_eq!(read(&lab.dir().join("outcome")), "aborted\n", "{run}");
}

#[test]
fn a_failing_on_failure_hook_keeps_the_original_failure() {
    let lab = Lab::up(2);
    let playbook = lab.write(
        "fail.yml",
        "name: Fail\nhosts: web\nhooks:\n  on_failure: 'echo \"chat is down\" >&2; exit 9'
steps:
  - name: Refuse host02
    run: test {{ inventory_hostname }} != host02
",
    );

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(1);
    assert_eq!(run.summary_result("host01"), "done", "{run}");
    assert_eq!(run.summary_result("host02"), "failed", "{run}");
    assert!(
        run.summary_row("host02")
            .contains("step 1 \"Refuse host02\""),
        "{run}"
    );
    let stderr = run.stderr();
    assert!(
        stderr.lines().any(|l| l
            .starts_with("herd: warning: hook on_failure failed: exit code 9 (")
            && l.ends_with("s); the run's outcome stands")),
        "{run}"
    );
    assert!(stderr.contains("herd:     chat is down\n"), "{run}");
    // The hook's failure comes before the final report, which still
    // names the host's own failure.
    let warning = stderr.find("hook on_failure failed").unwrap();
    let row = stderr.rfind("host02 ").unwrap();
    assert!(warning < row, "{run}");
}

/// Processes alive (not zombies) in process group `group`.
fn alive_in_group(group: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which ends with the last `)`):
        // state, ppid, pgrp.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == group.to_string() {
            found.push(pid);
        }
    }
    found
}

#[test]
fn ctrl_c_stops_a_local_step_and_its_children() {
    let lab = Lab::up(1);
    let playbook = lab.write(
        "wait.yml",
        "name: Wait\nhosts: web\nsteps:
  - name: Wait on the controller
    local: true
    run: echo $$ > local.pid; sleep 60; touch too-late
  - run: touch {{ app_dir }}/after
rollback:
  - local: true
    run: touch rolled-back
",
    );
    let started = Instant::now();
    let running = lab.herd(["run"]).arg(&playbook).spawn();
    let pid_file = lab.dir().join("local.pid");
    let group = || {
        fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
    };
    assert!(
        common::wait_until(Duration::from_secs(20), || group()
            .is_some_and(|g| alive_in_group(g).len() >= 2)),
        "the local step never started its sleep"
    );
    let group = group().unwrap();

    running.signal(libc::SIGINT);
    let run = running.wait();

    assert_eq!(run.code, Some(130), "{run}");
    assert!(started.elapsed() < Duration::from_secs(30), "{run}");
    assert_eq!(alive_in_group(group), Vec::<i32>::new(), "{run}");
    assert_eq!(run.summary_result("host01"), "interrupted", "{run}");
    assert!(lab.dir().join("rolled-back").exists(), "{run}");
    assert!(!lab.dir().join("too-late").exists(), "{run}");
    assert!(!lab.app_dir("host01").join("after").exists(), "{run}");
}
