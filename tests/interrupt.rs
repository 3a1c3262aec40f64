//! Ctrl-C: herd lets the commands in flight finish, starts no new step or
//! batch, rolls back the hosts it stopped after they changed something,
//! gives the deploy lock back, prints the summary and exits 130; a second
//! signal ends it at once, skipping those rollbacks, and says so.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{dir_state, wait_until, Lab, Run, Running};

/// Batch 1 is interrupted during its long middle step.
const SLOW_MIDDLE: &str = "\
name: Slow middle
hosts: web
steps:
  - name: First mark
    run: touch {{ app_dir }}/first
  - name: Nap
    run: sleep {{ nap }}
  - name: Last mark
    run: touch {{ app_dir }}/last
";

const BATCH_1: [&str; 2] = ["host01", "host02"];

/// Starts the playbook on 6 hosts in batches of 2 and returns once batch 1
/// is inside its `sleep` (its first marker is written, the nap has begun).
fn start_in_nap(lab: &Lab, nap: &str) -> common::Running {
    start_in_nap_with(lab, nap, &[])
}

/// [`start_in_nap`], with `extra` on herd's command line.
fn start_in_nap_with(lab: &Lab, nap: &str, extra: &[&str]) -> common::Running {
    // The first mark is written just before the nap starts.
    start_batches_of_2(
        lab,
        ("slow.yml", SLOW_MIDDLE),
        (nap, extra),
        |h| lab.app_dir(h).join("first").exists(),
        "batch 1 never ran its first step",
    )
}

/// Starts `playbook` (`(file name, text)`) in batches of 2 with `nap` set
/// and `extra` on the command line,
/// and returns once every host of batch 1 is `ready` (the step just before
/// the nap is done; `not_ready` is the failure when that takes over 20s),
/// after giving the nap time to begin, well inside its length.
fn start_batches_of_2(
    lab: &Lab,
    (name, playbook): (&str, &str),
    (nap, extra): (&str, &[&str]),
    ready: impl Fn(&str) -> bool,
    not_ready: &str,
) -> common::Running {
    let playbook = lab.write(name, playbook);
    let running = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--batch", "2", "-e"])
        .arg(format!("nap={nap}"))
        .args(extra)
        .spawn();
    assert!(
        wait_until(Duration::from_secs(20), || BATCH_1.iter().all(|h| ready(h))),
        "{not_ready}"
    );
    std::thread::sleep(Duration::from_millis(500));
    running
}

fn later_batches(lab: &Lab) -> BTreeMap<String, BTreeMap<String, String>> {
    lab.hosts()
        .iter()
        .filter(|h| !BATCH_1.contains(&h.name.as_str()))
        .map(|h| (h.name.clone(), dir_state(&h.app_dir)))
        .collect()
}

#[test]
fn sigint_lets_the_step_in_flight_finish_then_stops_and_reports() {
    let lab = Lab::up(6);
    let before = later_batches(&lab);
    let running = start_in_nap(&lab, "3");

    running.signal(libc::SIGINT);
    let run = running.wait();

    run.assert_code(130);
    for name in BATCH_1 {
        let app = lab.app_dir(name);
        assert!(app.join("first").exists(), "{name}\n{run}");
        // The nap in flight was let finish...
        assert!(
            run.stderr()
                .lines()
                .any(|l| l.starts_with(&format!("{name}: [2/3] Nap: ok"))),
            "{name}'s nap did not finish\n{run}"
        );
        // ...and nothing started after it.
        assert!(
            !app.join("last").exists(),
            "{name} ran its last step after Ctrl-C\n{run}"
        );
        assert_eq!(run.summary_result(name), "interrupted", "{run}");
    }
    assert_eq!(
        later_batches(&lab),
        before,
        "batch 2 or 3 changed on disk\n{run}"
    );
    for name in before.keys() {
        assert_eq!(run.summary_result(name), "untouched", "{run}");
        assert!(
            !run.stderr()
                .lines()
                .any(|l| l.starts_with(&format!("{name}: ["))),
            "a step of {name} shows in the progress\n{run}"
        );
    }
    assert!(run.stderr().contains("interrupted"), "{run}");
    assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new(), "{run}");
}

/// Ctrl-C twice, 300ms apart: herd exits 130 within 8s of the second,
/// well before the 20s nap in flight could have ended.
fn ctrl_c_twice(running: Running) -> Run {
    running.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    running.signal(libc::SIGINT);
    let run = running.wait();

    run.assert_code(130);
    assert!(
        signalled.elapsed() < Duration::from_secs(8),
        "herd took {:?} to exit after the second Ctrl-C\n{run}",
        signalled.elapsed()
    );
    run
}

#[test]
fn a_second_sigint_exits_at_once_and_the_next_run_breaks_the_stale_lock() {
    let lab = Lab::up(6);
    let before = later_batches(&lab);
    let running = start_in_nap(&lab, "20");
    let pid = running.pid();

    let run = ctrl_c_twice(running);

    for name in BATCH_1 {
        assert!(
            !lab.app_dir(name).join("last").exists(),
            "{name} ran its last step\n{run}"
        );
    }
    // Exiting at once leaves the locks behind (DESIGN.md: "leaving the lock
    // to go stale"), naming the herd that is now gone; nothing else changed.
    let mut after = later_batches(&lab);
    for (name, state) in after.iter_mut() {
        assert!(
            state.remove(".herd-deploy.lock").is_some(),
            "{name} has no lock left\n{run}"
        );
    }
    assert_eq!(after, before, "batch 2 or 3 changed on disk\n{run}");
    for host in lab.hosts() {
        let lock = std::fs::read_to_string(lab.lock_file(&host.name)).unwrap();
        assert!(
            lock.contains(&format!(" pid={pid} ")),
            "{}: {lock}",
            host.name
        );
    }

    // The next run of this controller breaks those stale locks.
    let marker = lab.write(
        "marker.yml",
        "name: Marker\nhosts: web\nsteps:\n  - run: touch {{ app_dir }}/marker\n",
    );
    let next = lab.herd(["run"]).arg(&marker).run();
    next.assert_code(0);
    for host in lab.hosts() {
        assert!(
            host.app_dir.join("marker").exists(),
            "{}\n{next}",
            host.name
        );
    }
    assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new(), "{next}");
}

/// Batch 1 switches `current` to a new release, then is interrupted during
/// its nap, before the reload it would have had next.
const SWITCH_THEN_NAP: &str = "\
name: Switch then nap
hosts: web
steps:
  - name: Build v2
    run: cp -R {{ app_dir }}/releases/v1 {{ app_dir }}/releases/v2
  - name: Switch current
    run: ln -sfn releases/v2 {{ app_dir }}/current
  - name: Nap
    run: sleep {{ nap }}
  - name: Last mark
    run: touch {{ app_dir }}/last
rollback:
  - name: Switch back
    run: ln -sfn releases/v1 {{ app_dir }}/current && echo switched-back >> {{ app_dir }}/rollback-log
";

/// Where `host`'s `current` points.
fn current(lab: &Lab, host: &str) -> String {
    std::fs::read_link(lab.app_dir(host).join("current"))
        .unwrap()
        .display()
        .to_string()
}

/// Starts `playbook` (SWITCH_THEN_NAP or a variant) on 4 hosts in batches of
/// 2 and returns once batch 1 has switched `current` and is inside its nap.
fn start_switched(lab: &Lab, playbook: &str, nap: &str) -> common::Running {
    // The switch is the step just before the nap.
    start_batches_of_2(
        lab,
        ("switch.yml", playbook),
        (nap, &[]),
        |h| current(lab, h) == "releases/v2",
        "batch 1 never switched current",
    )
}

#[test]
fn sigint_after_the_switch_rolls_the_host_back_and_says_so() {
    let lab = Lab::up(4);
    let before = later_batches(&lab);
    let running = start_switched(&lab, SWITCH_THEN_NAP, "3");

    running.signal(libc::SIGINT);
    let run = running.wait();

    run.assert_code(130);
    for name in BATCH_1 {
        // The nap in flight finished, nothing after it started, and the
        // rollback put the old release back.
        assert!(
            run.stderr()
                .lines()
                .any(|l| l.starts_with(&format!("{name}: [3/4] Nap: ok"))),
            "{name}'s nap did not finish\n{run}"
        );
        assert!(!lab.app_dir(name).join("last").exists(), "{name}\n{run}");
        assert_eq!(current(&lab, name), "releases/v1", "{name}\n{run}");
        assert_eq!(
            std::fs::read_to_string(lab.app_dir(name).join("rollback-log")).unwrap(),
            "switched-back\n",
            "{name}\n{run}"
        );
        assert!(
            run.stderr()
                .lines()
                .any(|l| l == format!("{name}: interrupted, rolled back")),
            "{name}\n{run}"
        );
        assert_eq!(run.summary_result(name), "interrupted", "{run}");
        assert!(
            run.summary_row(name).ends_with(
                "stopped by Ctrl-C before step 4 \"Last mark\"; interrupted, rolled back"
            ),
            "{run}"
        );
    }
    assert_eq!(later_batches(&lab), before, "batch 2 changed\n{run}");
    for name in before.keys() {
        assert_eq!(run.summary_result(name), "untouched", "{run}");
    }
    assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new(), "{run}");
}

#[test]
fn a_second_sigint_skips_the_rollback_and_says_so() {
    let lab = Lab::up(4);
    let running = start_switched(&lab, SWITCH_THEN_NAP, "20");

    let run = ctrl_c_twice(running);

    assert!(
        run.stderr().lines().any(|l| l
            == "herd: interrupted again: exiting at once; rollbacks not yet done are skipped \
                (hosts may be half-done: check them), deploy locks are left to go stale"),
        "{run}"
    );
    for name in BATCH_1 {
        // Left as the second Ctrl-C found it: switched, not rolled back.
        assert_eq!(current(&lab, name), "releases/v2", "{name}\n{run}");
        assert!(
            !lab.app_dir(name).join("rollback-log").exists(),
            "{name}\n{run}"
        );
        assert!(!lab.app_dir(name).join("last").exists(), "{name}\n{run}");
        // herd's last words name the host and the step it was left in.
        assert!(
            run.stderr().lines().any(|l| l
                == format!("herd: {name}: HALF-DONE: stopped during step 3/4 \"Nap\", no rollback ran: check this host by hand")),
            "{name}\n{run}"
        );
    }
    for name in ["host03", "host04"] {
        assert!(
            run.stderr()
                .lines()
                .any(|l| l == format!("herd: {name}: untouched")),
            "{name}\n{run}"
        );
    }
}

#[test]
fn a_second_sigint_under_github_actions_gives_workflow_commands_back() {
    let lab = Lab::up(4);
    let running = start_in_nap_with(&lab, "20", &["--ci-format", "github"]);

    let run = ctrl_c_twice(running);

    // Host output stayed text while herd ran; the job's later steps get
    // their commands back, as the last line says.
    let stderr = run.stderr();
    let token = stderr
        .lines()
        .find_map(|l| l.strip_prefix("::stop-commands::"))
        .unwrap_or_else(|| panic!("commands were never stopped\n{run}"));
    assert_eq!(
        stderr.lines().last(),
        Some(format!("::{token}::").as_str()),
        "{run}"
    );
    // The last words come before it, while commands are still stopped.
    let half_done = "herd: host01: HALF-DONE: stopped during step 2/3 \"Nap\", no rollback ran: check this host by hand";
    assert!(stderr.lines().any(|l| l == half_done), "{run}");
}

#[test]
fn a_rollback_that_fails_after_sigint_is_reported_loudly() {
    let lab = Lab::up(4);
    let failing = SWITCH_THEN_NAP.replace(
        "run: ln -sfn releases/v1 {{ app_dir }}/current && echo switched-back >> {{ app_dir }}/rollback-log",
        "run: echo tried >> {{ app_dir }}/rollback-log; exit 3",
    );
    assert_ne!(failing, SWITCH_THEN_NAP);
    let running = start_switched(&lab, &failing, "2");

    running.signal(libc::SIGINT);
    let run = running.wait();

    run.assert_code(130);
    for name in BATCH_1 {
        assert_eq!(
            std::fs::read_to_string(lab.app_dir(name).join("rollback-log")).unwrap(),
            "tried\n",
            "{name}\n{run}"
        );
        assert!(
            run.stderr()
                .lines()
                .any(|l| l
                    == format!("{name}: interrupted, ROLLBACK FAILED: check this host by hand")),
            "{name}\n{run}"
        );
        assert!(
            run.summary_row(name).ends_with(
                "stopped by Ctrl-C before step 4 \"Last mark\"; interrupted, ROLLBACK FAILED"
            ),
            "{run}"
        );
    }
    assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new(), "{run}");
}

/// Switches to v2 and reloads; the health check wants a text no release
/// serves, so herd waits for it up to a minute.
const RELOAD_NEVER_HEALTHY: &str = "\
name: Never healthy
hosts: web
steps:
  - name: Build v2
    run: cp -R {{ app_dir }}/releases/v1 {{ app_dir }}/releases/v2 && printf 'v2\\n' > {{ app_dir }}/releases/v2/RELEASE
  - name: Switch current
    run: ln -sfn releases/v2 {{ app_dir }}/current
rollback:
  - name: Switch back
    run: ln -sfn releases/v1 {{ app_dir }}/current
reload:
  pidfile: \"{{ gunicorn_pidfile }}\"
validate:
  timeout: 60s
  http: { url: \"http://{{ ansible_host }}:{{ http_port }}/healthz\", contains: never-served }
";

/// How many HUPs `host`'s Gunicorn logged.
fn hups(lab: &Lab, host: &str) -> usize {
    std::fs::read_to_string(lab.app_dir(host).join("gunicorn.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Handling signal: hup"))
        .count()
}

#[test]
fn sigint_while_a_reload_is_proven_stops_the_wait_and_rolls_the_host_back() {
    let lab = Lab::up(2);
    let playbook = lab.write("never.yml", RELOAD_NEVER_HEALTHY);
    let running = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--batch", "1"])
        .spawn();
    assert!(
        wait_until(Duration::from_secs(30), || hups(&lab, "host01") >= 1),
        "host01 never got its HUP"
    );
    std::thread::sleep(Duration::from_millis(500));

    let signalled = Instant::now();
    running.signal(libc::SIGINT);
    let run = running.wait();

    run.assert_code(130);
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "herd waited {:?} for a health check after Ctrl-C\n{run}",
        signalled.elapsed()
    );
    assert!(
        run.stderr()
            .lines()
            .any(|l| l.starts_with("host01: reload FAILED: proof `http`: ")
                && l.contains("stopped by Ctrl-C before it was proven")),
        "{run}"
    );
    // Rolled back: v1 is current again and served after the restore.
    assert_eq!(current(&lab, "host01"), "releases/v1", "{run}");
    assert_eq!(run.summary_result("host01"), "rolled back", "{run}");
    assert_eq!(run.summary_result("host02"), "untouched", "{run}");
    assert_eq!(hups(&lab, "host02"), 0, "{run}");
    assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new(), "{run}");
}
