//! Ctrl-C: herd lets the commands in flight finish, starts no new step or
//! batch, gives the deploy lock back, prints the summary and exits 130; a
//! second signal ends it at once.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{dir_state, wait_until, Lab};

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
    let playbook = lab.write("slow.yml", SLOW_MIDDLE);
    let running = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--batch", "2", "-e"])
        .arg(format!("nap={nap}"))
        .spawn();
    assert!(
        wait_until(Duration::from_secs(20), || BATCH_1
            .iter()
            .all(|h| lab.app_dir(h).join("first").exists())),
        "batch 1 never ran its first step"
    );
    // The first mark is written just before the nap starts: give the nap
    // time to begin, well inside its length.
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

#[test]
fn a_second_sigint_exits_at_once_and_the_next_run_breaks_the_stale_lock() {
    let lab = Lab::up(6);
    let before = later_batches(&lab);
    let running = start_in_nap(&lab, "20");
    let pid = running.pid();

    running.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    running.signal(libc::SIGINT);
    let run = running.wait();

    run.assert_code(130);
    // Well before the 20s nap in flight could have ended.
    assert!(
        signalled.elapsed() < Duration::from_secs(8),
        "herd took {:?} to exit after the second Ctrl-C\n{run}",
        signalled.elapsed()
    );
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
