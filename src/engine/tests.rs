//! Engine tests on the scripted transport, with tokio's paused clock.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{Engine, EngineSettings};
use crate::event::{Event, HostState, RunReport};
use crate::plan::{Job, Plan, PlanRequest};
use crate::transport::fake::{FakeConnector, Rule};

/// An inventory of `n` hosts (h1..hN) and a playbook, written to a temp dir.
fn plan(n: usize, playbook: &str, batch: Option<&str>) -> (Plan, tempfile::TempDir) {
    let hosts: String = (1..=n)
        .map(|i| format!("        h{i}: {{ app_dir: /srv/h{i} }}\n"))
        .collect();
    plan_of(&hosts, playbook, batch)
}

/// A plan for the inventory lines `hosts` (under group `web`) and a playbook.
fn plan_of(hosts: &str, playbook: &str, batch: Option<&str>) -> (Plan, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let inventory = format!("all:\n  children:\n    web:\n      hosts:\n{hosts}");
    std::fs::write(dir.path().join("inventory.yml"), inventory).expect("write inventory");
    std::fs::write(dir.path().join("play.yml"), playbook).expect("write playbook");
    let job = Job::Playbook(dir.path().join("play.yml"));
    (plan_in(dir.path(), job, batch), dir)
}

/// The plan of `job` over `dir/inventory.yml`.
fn plan_in(dir: &Path, job: Job, batch: Option<&str>) -> Plan {
    let request = PlanRequest {
        job,
        inventory: dir.join("inventory.yml"),
        limit: None,
        extra_vars: Vec::new(),
        batch: batch.map(str::to_string),
        known_hosts: Some(Path::new("/dev/null").to_path_buf()),
        ssh_config: None,
        step_timeout: Duration::from_secs(600),
    };
    Plan::build(&request).unwrap_or_else(|e| panic!("plan: {e}"))
}

/// What the engine tests run with: 10 forks, 4 handshakes at once, every
/// host required, and `lock`.
fn settings(lock: Option<super::LockSettings>) -> EngineSettings {
    EngineSettings {
        forks: 10,
        handshakes: 4,
        require_reachable: true,
        lock,
        audit: None,
    }
}

async fn run(plan: Plan, connector: FakeConnector) -> (RunReport, Vec<Event>, FakeConnector) {
    run_with(plan, connector, settings(None)).await
}

/// Runs `plan` to its end with `settings`; returns the report, the events
/// and the fake.
async fn run_with(
    plan: Plan,
    connector: FakeConnector,
    settings: EngineSettings,
) -> (RunReport, Vec<Event>, FakeConnector) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_cancel_tx, cancel_rx) = watch::channel(false);
    let connector = Arc::new(connector);
    let report = Engine::new(Arc::new(plan), connector.clone(), settings, tx, cancel_rx)
        .run()
        .await;
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    (
        report,
        events,
        Arc::try_unwrap(connector).unwrap_or_else(|c| (*c).clone()),
    )
}

fn state<'r>(report: &'r RunReport, host: &str) -> &'r HostState {
    &report
        .hosts
        .iter()
        .find(|h| h.host == host)
        .expect("host in report")
        .state
}

const THREE_STEPS: &str =
    "hosts: web\nsteps:\n  - run: echo one {{ app_dir }}\n  - run: echo two\n  - run: echo three\n";

#[tokio::test(start_paused = true)]
async fn every_host_runs_every_step_in_order() {
    let (plan, _dir) = plan(3, THREE_STEPS, None);
    let (report, _, fake) = run(plan, FakeConnector::default()).await;
    assert!(report.all_done(), "{report:?}");
    for host in ["h1", "h2", "h3"] {
        let commands = fake.commands(host);
        assert_eq!(commands.len(), 3);
        assert!(
            commands[0].contains(&format!("echo one /srv/{host}")),
            "{commands:?}"
        );
        assert!(commands[1].contains("echo two"));
        assert!(commands[2].contains("echo three"));
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_step_stops_the_host_and_runs_its_rollback() {
    let playbook = format!("{THREE_STEPS}rollback:\n  - run: echo undo\n");
    let (plan, _dir) = plan(2, &playbook, None);
    let fake = FakeConnector::default().rule("h2", Rule::new("echo two", 3).stderr("boom\n"));
    let (report, _, fake) = run(plan, fake).await;
    assert!(!report.all_done());
    assert_eq!(state(&report, "h1"), &HostState::Done);
    let HostState::RolledBack {
        failure,
        rollback_ok,
    } = state(&report, "h2")
    else {
        panic!("h2 should be rolled back: {report:?}");
    };
    assert!(rollback_ok);
    assert_eq!((failure.step, failure.exit_code), (2, Some(3)));
    assert_eq!(failure.stderr_tail, "boom");
    let commands = fake.commands("h2");
    assert!(
        !commands.iter().any(|c| c.contains("echo three")),
        "{commands:?}"
    );
    assert!(commands.last().is_some_and(|c| c.contains("echo undo")));
    // h1 ran no rollback.
    assert!(!fake.commands("h1").iter().any(|c| c.contains("undo")));
}

#[tokio::test(start_paused = true)]
async fn captured_output_feeds_later_steps_and_rollback() {
    let playbook = "hosts: web\nsteps:\n  - run: readlink current\n    capture: previous\n  - run: deploy --from {{ previous }}\n  - run: fail-now\nrollback:\n  - run: restore {{ previous }}\n";
    let (plan, _dir) = plan(1, playbook, None);
    let fake = FakeConnector::default()
        .rule("h1", Rule::new("readlink", 0).stdout("/srv/releases/v1\n"))
        .rule("h1", Rule::new("fail-now", 1));
    let (_, _, fake) = run(plan, fake).await;
    let commands = fake.commands("h1");
    assert!(
        commands[1].contains("deploy --from /srv/releases/v1"),
        "{commands:?}"
    );
    assert!(
        commands[3].contains("restore /srv/releases/v1"),
        "{commands:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn once_steps_run_on_one_host_per_rollout() {
    let playbook = "hosts: web\nsteps:\n  - run: migrate\n    once: true\n  - run: restart\n";
    let (plan, _dir) = plan(4, playbook, Some("2"));
    let (report, _, fake) = run(plan, FakeConnector::default()).await;
    assert!(report.all_done());
    let migrations: usize = ["h1", "h2", "h3", "h4"]
        .iter()
        .map(|h| {
            fake.commands(h)
                .iter()
                .filter(|c| c.contains("migrate"))
                .count()
        })
        .sum();
    assert_eq!(migrations, 1);
    assert_eq!(fake.commands("h4").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_host_stops_a_rollout_before_any_step() {
    let (plan, _dir) = plan(3, THREE_STEPS, None);
    let (report, _, fake) = run(plan, FakeConnector::default().unreachable("h2")).await;
    assert!(matches!(
        state(&report, "h2"),
        HostState::Unreachable { .. }
    ));
    assert!(matches!(state(&report, "h1"), HostState::Untouched { .. }));
    assert!(report
        .aborted
        .as_deref()
        .is_some_and(|r| r.contains("did not start")));
    assert!(fake.commands("h1").is_empty() && fake.commands("h3").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_batch_leaves_later_batches_untouched() {
    let (plan, _dir) = plan(8, THREE_STEPS, Some("2"));
    let fake = FakeConnector::default().rule("h3", Rule::new("echo two", 1));
    let (report, events, fake) = run(plan, fake).await;
    for host in ["h1", "h2", "h4"] {
        assert_eq!(state(&report, host), &HostState::Done, "{host}");
    }
    assert!(matches!(state(&report, "h3"), HostState::Failed { .. }));
    for host in ["h5", "h6", "h7", "h8"] {
        assert!(
            matches!(state(&report, host), HostState::Untouched { .. }),
            "{host}"
        );
        assert!(fake.commands(host).is_empty(), "{host} was touched");
    }
    let batches = events
        .iter()
        .filter(|e| matches!(e, Event::BatchStarted { .. }))
        .count();
    assert_eq!(batches, 2);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::RolloutAborted { .. })));
}

#[tokio::test(start_paused = true)]
async fn max_fail_lets_the_rollout_go_on() {
    let playbook = format!("{THREE_STEPS}rolling:\n  max_fail: 1\n");
    let (plan, _dir) = plan(4, &playbook, Some("1"));
    let fake = FakeConnector::default().rule("h1", Rule::new("echo one", 1));
    let (report, _, fake) = run(plan, fake).await;
    assert!(report.aborted.is_none());
    assert_eq!(fake.commands("h4").len(), 3);
    assert_eq!(report.count("done"), 3);
}

#[tokio::test(start_paused = true)]
async fn a_step_that_outlives_its_timeout_fails_the_host() {
    let playbook = "hosts: web\nsteps:\n  - run: slow\n    timeout: 5s\n  - run: after\n";
    let (plan, _dir) = plan(1, playbook, None);
    let fake =
        FakeConnector::default().rule("h1", Rule::new("slow", 0).delay(Duration::from_secs(3600)));
    let started = tokio::time::Instant::now();
    let (report, _, fake) = run(plan, fake).await;
    let HostState::Failed { failure } = state(&report, "h1") else {
        panic!("expected a failure: {report:?}");
    };
    assert_eq!(failure.reason, "the command timed out after 5s");
    assert!(started.elapsed() < Duration::from_secs(6));
    // Nothing after it ran (only a no-op that sees the connection answers).
    assert_eq!(fake.commands("h1"), ["slow", ":"]);
}

#[tokio::test(start_paused = true)]
async fn secrets_from_the_environment_never_reach_events() {
    std::env::set_var("HERD_ENGINE_TEST_SECRET", "hunter2-secret");
    let playbook = "hosts: web\nsteps:\n  - run: login {{ env.HERD_ENGINE_TEST_SECRET }}\n";
    let (plan, _dir) = plan(1, playbook, None);
    let fake = FakeConnector::default().rule(
        "h1",
        Rule::new("login", 1).stderr("bad token hunter2-secret\n"),
    );
    let (report, events, fake) = run(plan, fake).await;
    assert!(
        fake.commands("h1")[0].contains("hunter2-secret"),
        "the host gets the real value"
    );
    let text = format!("{events:?}{report:?}");
    assert!(!text.contains("hunter2-secret"), "{text}");
    assert!(text.contains("bad token ***"));
}

fn locking() -> super::LockSettings {
    super::LockSettings {
        owner: super::lock::LockOwner::current("play.yml"),
        wait: Duration::from_secs(3),
        timeout: Duration::from_secs(5),
    }
}

async fn run_locked(plan: Plan, connector: FakeConnector) -> (RunReport, FakeConnector) {
    let (report, _, fake) = run_with(plan, connector, settings(Some(locking()))).await;
    (report, fake)
}

#[tokio::test(start_paused = true)]
async fn a_held_lock_on_one_host_means_no_host_is_touched() {
    let (plan, _dir) = plan(3, THREE_STEPS, None);
    let holder =
        "run=9 user=alice controller=ci-9 pid=42 since=2026-11-25T10:00:00Z playbook=other.yml\n";
    let fake = FakeConnector::default().rule("h2", Rule::new("set -C", 75).stdout(holder));
    let started = tokio::time::Instant::now();
    let (report, fake) = run_locked(plan, fake).await;
    assert_eq!(report.lock_held.len(), 1);
    assert_eq!(report.lock_held[0].host, "h2");
    assert_eq!(
        report.lock_held[0].holder,
        "user alice on ci-9 (pid 42), playbook other.yml, since 2026-11-25T10:00:00Z"
    );
    // It waited for --lock-wait, trying again, then gave up.
    assert!(started.elapsed() >= Duration::from_secs(2));
    for host in ["h1", "h2", "h3"] {
        assert!(
            !fake.commands(host).iter().any(|c| c.contains("echo")),
            "{host} ran a step"
        );
        assert!(matches!(state(&report, host), HostState::Untouched { .. }));
    }
    // What was taken on h1 and h3 was given back each round.
    assert!(fake.commands("h1").iter().any(|c| c.contains("rm -f")));
}

#[tokio::test(start_paused = true)]
async fn the_lock_is_taken_before_and_given_back_after_the_steps() {
    let (plan, _dir) = plan(2, THREE_STEPS, None);
    let (report, fake) = run_locked(plan, FakeConnector::default()).await;
    assert!(report.all_done(), "{report:?}");
    let commands = fake.commands("h1");
    assert!(
        commands.first().is_some_and(|c| c.contains("set -C")),
        "{commands:?}"
    );
    assert!(
        commands.last().is_some_and(|c| c.contains("rm -f")),
        "{commands:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn cancellation_starts_no_new_step_or_batch() {
    let (plan, _dir) = plan(4, THREE_STEPS, Some("2"));
    let fake = FakeConnector::default()
        .rule(
            "h1",
            Rule::new("echo one", 0).delay(Duration::from_secs(10)),
        )
        .rule(
            "h2",
            Rule::new("echo one", 0).delay(Duration::from_secs(10)),
        );
    let (tx, _rx) = mpsc::unbounded_channel();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let settings = settings(Some(locking()));
    let connector = Arc::new(fake);
    let engine = Engine::new(Arc::new(plan), connector.clone(), settings, tx, cancel_rx);
    let running = tokio::spawn(engine.run());
    tokio::time::sleep(Duration::from_secs(5)).await;
    cancel_tx.send(true).expect("engine listening");
    let report = running.await.expect("engine task");
    assert!(report.interrupted);
    // The in-flight step finished; nothing after it started.
    for host in ["h1", "h2"] {
        let HostState::Interrupted { next_step, .. } = state(&report, host) else {
            panic!("{host}: {report:?}");
        };
        assert_eq!(*next_step, 2);
        assert!(!connector
            .commands(host)
            .iter()
            .any(|c| c.contains("echo two")));
    }
    for host in ["h3", "h4"] {
        assert!(matches!(state(&report, host), HostState::Untouched { .. }));
        assert!(!connector.commands(host).iter().any(|c| c.contains("echo")));
    }
    // The lock was still given back.
    assert!(connector
        .commands("h3")
        .last()
        .is_some_and(|c| c.contains("rm -f")));
}

#[tokio::test(start_paused = true)]
async fn cancellation_after_the_steps_sends_no_reload() {
    let playbook = "hosts: web\nsteps:\n  - run: slow-step\nreload:\n  pidfile: /srv/app.pid\n";
    let (plan, _dir) = plan(1, playbook, None);
    let fake = FakeConnector::default().rule(
        "h1",
        Rule::new("slow-step", 0).delay(Duration::from_secs(10)),
    );
    let (report, connector) = run_cancelled(plan, fake, Duration::from_secs(5)).await;
    let HostState::Interrupted {
        next_step,
        next_step_name,
        ..
    } = state(&report, "h1")
    else {
        panic!("{report:?}");
    };
    assert_eq!((*next_step, next_step_name.as_str()), (2, "reload"));
    // Not even the /proc snapshot that precedes a signal was taken.
    assert!(!connector
        .commands("h1")
        .iter()
        .any(|c| c.contains("--herd procs") || c.contains("kill")));
}

/// Runs `plan` and sends Ctrl-C after `after`; returns the report and what ran.
async fn run_cancelled(
    plan: Plan,
    connector: FakeConnector,
    after: Duration,
) -> (RunReport, Arc<FakeConnector>) {
    let (tx, _rx) = mpsc::unbounded_channel();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let settings = settings(None);
    let connector = Arc::new(connector);
    let running =
        tokio::spawn(Engine::new(Arc::new(plan), connector.clone(), settings, tx, cancel_rx).run());
    tokio::time::sleep(after).await;
    cancel_tx.send(true).expect("engine listening");
    (running.await.expect("engine task"), connector)
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_after_a_change_rolls_the_host_back_and_sends_no_reload() {
    let playbook = "hosts: web\nsteps:\n  - run: switch-current\n  - run: slow-step\n\
                    rollback:\n  - run: switch-back\nreload:\n  pidfile: /srv/app.pid\n";
    let (plan, _dir) = plan(1, playbook, None);
    let fake = FakeConnector::default().rule(
        "h1",
        Rule::new("slow-step", 0).delay(Duration::from_secs(10)),
    );
    let (report, connector) = run_cancelled(plan, fake, Duration::from_secs(5)).await;
    assert!(report.interrupted);
    assert_eq!(
        state(&report, "h1"),
        &HostState::Interrupted {
            next_step: 3,
            next_step_name: "reload".to_string(),
            rollback_ok: Some(true),
        }
    );
    let commands = connector.commands("h1");
    assert!(
        commands.last().is_some_and(|c| c.contains("switch-back")),
        "{commands:?}"
    );
    assert!(!commands
        .iter()
        .any(|c| c.contains("--herd procs") || c.contains("kill")));
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_rolls_back_only_hosts_that_changed_something_and_reports_a_failed_rollback() {
    // h1 runs the once step; h2 waits for it, skips it, and so has changed
    // nothing when Ctrl-C stops it before its own first step.
    let playbook = "hosts: web\nsteps:\n  - run: migrate\n    once: true\n  - run: restart\n\
                    rollback:\n  - run: drop-schema\n";
    let (plan, _dir) = plan(2, playbook, None);
    let fake = FakeConnector::default()
        .rule("h1", Rule::new("migrate", 0).delay(Duration::from_secs(10)))
        .rule("h1", Rule::new("drop-schema", 1));
    let (report, connector) = run_cancelled(plan, fake, Duration::from_secs(5)).await;
    assert!(matches!(
        state(&report, "h1"),
        HostState::Interrupted {
            next_step: 2,
            rollback_ok: Some(false),
            ..
        }
    ));
    assert!(matches!(
        state(&report, "h2"),
        HostState::Interrupted {
            next_step: 2,
            rollback_ok: None,
            ..
        }
    ));
    assert!(connector
        .commands("h2")
        .iter()
        .all(|c| !c.contains("drop-schema")));
}

#[tokio::test(start_paused = true)]
async fn two_names_for_one_machine_take_and_give_back_one_lock() {
    // h1 and h2: the same address, port, user and (default) lock file.
    let hosts = concat!(
        "        h1: { ansible_host: box, app_dir: /srv/a }\n",
        "        h2: { ansible_host: box, app_dir: /srv/b }\n",
        "        h3: { app_dir: /srv/c }\n",
    );
    let (plan, _dir) = plan_of(hosts, THREE_STEPS, None);
    let (report, fake) = run_locked(plan, FakeConnector::default()).await;
    assert!(report.all_done(), "{report:?}");
    let count = |hosts: &[&str], what: &str| {
        hosts
            .iter()
            .flat_map(|h| fake.commands(h))
            .filter(|c| c.contains(what))
            .count()
    };
    assert_eq!(count(&["h1", "h2"], "set -C"), 1);
    assert_eq!(count(&["h1", "h2"], "rm -f"), 1);
    assert_eq!(count(&["h3"], "set -C"), 1);
    assert_eq!(count(&["h1", "h2"], "echo"), 6);
}

#[tokio::test(start_paused = true)]
async fn a_lock_that_cannot_be_created_aborts_the_rollout_saying_why() {
    let (plan, _dir) = plan(2, THREE_STEPS, None);
    let fake = FakeConnector::default().rule(
        "h2",
        Rule::new("set -C", 74).stderr("sh: 2: cannot create /x/lock: Permission denied"),
    );
    let (report, fake) = run_locked(plan, fake).await;
    assert!(report.lock_held.is_empty(), "{report:?}");
    assert_eq!(
        report.aborted.as_deref(),
        Some("h2: cannot create the deploy lock ~/.herd-deploy.lock: sh: 2: cannot create /x/lock: Permission denied: the rollout did not start")
    );
    for host in ["h1", "h2"] {
        assert!(!fake.commands(host).iter().any(|c| c.contains("echo")));
        assert!(matches!(state(&report, host), HostState::Untouched { .. }));
    }
    // h1's lock, taken meanwhile, was given back.
    assert!(fake.commands("h1").iter().any(|c| c.contains("rm -f")));
}

/// Runs `plan` with the audit trail on; returns the report, the events and
/// the fake.
async fn run_audited(
    plan: Plan,
    connector: FakeConnector,
) -> (RunReport, Vec<Event>, FakeConnector) {
    let settings = EngineSettings {
        audit: Some(super::audit::AuditSettings {
            command: "run".into(),
            playbook: "play.yml".into(),
            user: "alice".into(),
            controller: "ci-3".into(),
            timeout: Duration::from_secs(5),
        }),
        ..settings(None)
    };
    run_with(plan, connector, settings).await
}

/// The audit commands sent to `host`.
fn audit_writes(fake: &FakeConnector, host: &str) -> Vec<String> {
    fake.commands(host)
        .into_iter()
        .filter(|c| c.contains("audit.log"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn each_reached_host_gets_one_audit_line_and_a_failed_write_is_only_a_warning() {
    let playbook = "hosts: web\nrolling:\n  batch: 1\n  max_fail: 0\nsteps:\n  - run: echo one\n";
    let (plan, _dir) = plan(3, playbook, None);
    let fake = FakeConnector::default()
        .rule(
            "h1",
            Rule::new("audit.log", 1).stderr("sh: cannot create: Permission denied\n"),
        )
        .rule("h2", Rule::new("echo one", 4).stderr("bad\n"));
    let (report, events, fake) = run_audited(plan, fake).await;

    assert_eq!(state(&report, "h1"), &HostState::Done);
    assert!(events.iter().any(|e| matches!(e,
        Event::AuditFailed { host, path, reason }
            if host == "h1" && path == "~/.herd/audit.log"
                && reason == "exit code 1: sh: cannot create: Permission denied")));
    for host in ["h1", "h2", "h3"] {
        let writes = audit_writes(&fake, host);
        assert_eq!(writes.len(), 1, "{host}: {writes:?}");
        assert!(writes[0].contains(">> \"$f\""), "{}", writes[0]);
    }
    assert!(audit_writes(&fake, "h2")[0].contains(
        r#""release":"-","result":"failed","reason":"step 1 `echo one`: exited with code 4: bad"}"#
    ), "{:?}", audit_writes(&fake, "h2"));
    // h3's batch never ran: its line says so.
    assert!(
        audit_writes(&fake, "h3")[0].contains(
            r#""result":"untouched","reason":"the rollout stopped before this host'\''s batch"}"#
        ),
        "{:?}",
        audit_writes(&fake, "h3")
    );
}

/// Hooks that each append a line to `hooks.log` beside the playbook.
const HOOKS: &str = r#"hooks:
  before_batch: echo "before $HERD_BATCH/$HERD_BATCHES [$HERD_BATCH_HOSTS] failed=[$HERD_FAILED_HOSTS] $HERD_HOOK $HERD_COMMAND" >> hooks.log
  after_batch: echo "after $HERD_BATCH $HERD_OUTCOME [$HERD_BATCH_HOSTS] failed=[$HERD_FAILED_HOSTS]" >> hooks.log
  on_success: echo "success $HERD_OUTCOME [$HERD_HOSTS] failed=[$HERD_FAILED_HOSTS]" >> hooks.log
  on_failure: echo "failure $HERD_OUTCOME [$HERD_HOSTS] failed=[$HERD_FAILED_HOSTS]" >> hooks.log
"#;

fn hook_log(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("hooks.log")).unwrap_or_default()
}

// Hooks are real processes: these tests run on the real clock.
#[tokio::test]
async fn hooks_run_around_each_batch_and_at_the_end_with_their_variables() {
    let playbook = format!("hosts: web\n{HOOKS}steps:\n  - run: echo one\n");
    let (plan, dir) = plan(3, &playbook, Some("1,2"));
    let (report, events, _) = run(plan, FakeConnector::default()).await;
    assert!(report.all_done(), "{report:?}");
    assert_eq!(
        hook_log(&dir),
        "before 1/2 [h1] failed=[] before_batch run\n\
         after 1 ok [h1] failed=[]\n\
         before 2/2 [h2 h3] failed=[] before_batch run\n\
         after 2 ok [h2 h3] failed=[]\n\
         success ok [h1 h2 h3] failed=[]\n"
    );
    // Each batch hook ran after its batch started and before its first step.
    let order: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::BatchStarted { batch, .. } => Some(format!("batch {batch}")),
            Event::HookFinished { hook, result, .. } => Some(format!("{hook} {}", result.ok)),
            Event::StepStarted { host, .. } => Some(format!("step {host}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        [
            "batch 1",
            "before_batch true",
            "step h1",
            "after_batch true",
            "batch 2",
            "before_batch true",
            "step h2",
            "step h3",
            "after_batch true",
            "on_success true"
        ]
    );
}

#[tokio::test]
async fn a_failed_host_makes_the_outcome_failed_and_runs_on_failure() {
    let playbook =
        format!("hosts: web\nrolling:\n  max_fail: 1\n{HOOKS}steps:\n  - run: echo one\n");
    let (plan, dir) = plan(3, &playbook, Some("2"));
    let fake = FakeConnector::default().rule("h2", Rule::new("echo one", 1));
    let (report, _, _) = run(plan, fake).await;
    assert!(report.aborted.is_none(), "{report:?}");
    assert_eq!(
        hook_log(&dir),
        "before 1/2 [h1 h2] failed=[] before_batch run\n\
         after 1 failed [h1 h2] failed=[h2]\n\
         before 2/2 [h3] failed=[h2] before_batch run\n\
         after 2 ok [h3] failed=[h2]\n\
         failure failed [h1 h2 h3] failed=[h2]\n"
    );
}

#[tokio::test]
async fn a_failing_before_batch_hook_fails_its_batch_and_touches_none_of_its_hosts() {
    let playbook = "hosts: web\nhooks:\n  before_batch: 'test $HERD_BATCH = 1 || { echo drain refused >&2; exit 4; }'\n  after_batch: echo \"$HERD_BATCH $HERD_OUTCOME\" >> after\n  on_failure: echo \"$HERD_OUTCOME\" > outcome\nsteps:\n  - run: echo one\n";
    let (plan, dir) = plan(3, playbook, Some("1"));
    let (report, events, fake) = run(plan, FakeConnector::default()).await;
    assert_eq!(
        report.aborted.as_deref(),
        Some("the before_batch hook of batch 2 of 3 failed: exited with code 4")
    );
    assert_eq!(state(&report, "h1"), &HostState::Done);
    assert_eq!(
        state(&report, "h2"),
        &HostState::Untouched {
            reason: "the before_batch hook failed (exited with code 4): nothing ran".into()
        }
    );
    assert_eq!(
        state(&report, "h3"),
        &HostState::Untouched {
            reason: "the rollout stopped before this host's batch".into()
        }
    );
    assert!(fake.commands("h2").is_empty() && fake.commands("h3").is_empty());
    let failed_hook = events.iter().find_map(|e| match e {
        Event::HookFinished { hook, result, .. } if !result.ok => {
            Some((hook.clone(), result.clone()))
        }
        _ => None,
    });
    let (hook, result) = failed_hook.expect("a failed hook event");
    assert_eq!(
        (hook.as_str(), result.exit_code, result.ignored),
        ("before_batch", Some(4), false)
    );
    assert_eq!(result.stderr, "drain refused\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("outcome")).unwrap(),
        "aborted\n"
    );
    // after_batch runs after the failed before_batch too, to undo it.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("after")).unwrap(),
        "1 ok\n2 failed\n"
    );
}

#[tokio::test]
async fn a_failing_on_failure_hook_is_a_warning_that_keeps_the_failure() {
    let playbook = "hosts: web\nhooks:\n  on_failure: exit 9\nsteps:\n  - run: echo one\n";
    let (plan, _dir) = plan(1, playbook, None);
    let fake = FakeConnector::default().rule("h1", Rule::new("echo one", 2));
    let (report, events, _) = run(plan, fake).await;
    let HostState::Failed { failure } = state(&report, "h1") else {
        panic!("h1 should have failed: {report:?}");
    };
    assert_eq!(failure.exit_code, Some(2));
    assert!(
        report
            .aborted
            .as_deref()
            .is_some_and(|r| r.contains("max_fail")),
        "{report:?}"
    );
    let hook = events.iter().find_map(|e| match e {
        Event::HookFinished { result, .. } => Some(result.clone()),
        _ => None,
    });
    let hook = hook.expect("the hook's event");
    assert_eq!(
        (hook.ok, hook.ignored, hook.exit_code),
        (false, true, Some(9))
    );
    // As `--output json` writes it.
    let json = events
        .iter()
        .find(|e| matches!(e, Event::HookFinished { .. }))
        .map(|e| serde_json::to_value(e).expect("serializes"))
        .expect("the hook's event");
    assert_eq!(json["event"], "hook_finished");
    assert_eq!(json["hook"], "on_failure");
    assert_eq!(json["batch"], serde_json::Value::Null);
    assert_eq!(
        (&json["ok"], &json["ignored"]),
        (&false.into(), &true.into())
    );
    assert_eq!(json["exit_code"], 9);
    // The run's final report is the one it had before the hook.
    let Some(Event::RunFinished { report: last }) = events.last() else {
        panic!("the run ends with its report");
    };
    assert_eq!(last.hosts, report.hosts);
    assert_eq!(last.aborted, report.aborted);
}

#[tokio::test]
async fn a_failing_after_batch_hook_stops_the_rollout_there() {
    let playbook = "hosts: web\nhooks:\n  after_batch: exit 1\nsteps:\n  - run: echo one\n";
    let (plan, _dir) = plan(2, playbook, Some("1"));
    let (report, _, fake) = run(plan, FakeConnector::default()).await;
    assert_eq!(
        report.aborted.as_deref(),
        Some("the after_batch hook of batch 1 of 2 failed: exited with code 1")
    );
    assert_eq!(state(&report, "h1"), &HostState::Done);
    assert!(fake.commands("h2").is_empty());
}

#[tokio::test]
async fn a_local_step_runs_on_the_controller_with_the_host_variables() {
    let playbook = "hosts: web\nsteps:\n  - run: echo {{ app_dir }}\n    capture: dir\n  - run: echo {{ inventory_hostname }} \"$WHERE\" {{ dir }} >> local.log; echo said-{{ inventory_hostname }}\n    local: true\n    env: { WHERE: controller }\n    capture: said\n  - run: echo {{ said }}\n  - run: echo once-{{ inventory_hostname }} >> once.log\n    local: true\n    once: true\n";
    let (plan, dir) = plan(2, playbook, Some("1"));
    let fake = FakeConnector::default()
        .rule("h1", Rule::new("echo /srv/h1", 0).stdout("/srv/h1\n"))
        .rule("h2", Rule::new("echo /srv/h2", 0).stdout("/srv/h2\n"));
    let (report, _, fake) = run(plan, fake).await;
    assert!(report.all_done(), "{report:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("local.log")).unwrap(),
        "h1 controller /srv/h1\nh2 controller /srv/h2\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("once.log")).unwrap(),
        "once-h1\n"
    );
    for host in ["h1", "h2"] {
        let commands = fake.commands(host);
        assert_eq!(
            commands.len(),
            2,
            "only the remote steps reach the host: {commands:?}"
        );
        assert!(
            commands[1].contains(&format!("echo said-{host}")),
            "{commands:?}"
        );
    }
}

#[tokio::test]
async fn a_local_step_masks_secrets_and_may_ignore_its_failure() {
    std::env::set_var("HERD_ENGINE_LOCAL_SECRET", "swordfish-local");
    let playbook = "hosts: web\nsteps:\n  - run: echo token {{ env.HERD_ENGINE_LOCAL_SECRET }} >&2; exit 5\n    local: true\n    ignore_errors: true\n  - run: echo next\n";
    let (plan, _dir) = plan(1, playbook, None);
    let (report, events, fake) = run(plan, FakeConnector::default()).await;
    assert!(report.all_done(), "{report:?}");
    let text = format!("{events:?}{report:?}");
    assert!(!text.contains("swordfish-local"), "{text}");
    let local = events.iter().find_map(|e| match e {
        Event::StepFinished {
            step: 1, result, ..
        } => Some(result.clone()),
        _ => None,
    });
    let local = local.expect("the local step's event");
    assert_eq!(
        (
            local.ok,
            local.ignored,
            local.exit_code,
            local.stderr.as_str()
        ),
        (false, true, Some(5), "token ***\n")
    );
    assert_eq!(
        fake.commands("h1").len(),
        1,
        "only `echo next` reaches the host"
    );
}

/// A run of `uptime` on h1 and h2, h2 slow to connect by 5 s: `herd exec`
/// or a rollout. Returns the report, the events, the connector, and when
/// the run started.
async fn run_with_a_slow_host(
    exec: bool,
) -> (RunReport, Vec<Event>, FakeConnector, tokio::time::Instant) {
    let (mut plan, dir) = plan(2, "hosts: web\nsteps:\n  - run: uptime\n", None);
    if exec {
        plan = plan_in(dir.path(), Job::Command("uptime".into()), None);
    }
    let connector = FakeConnector::default().slow_to_connect("h2", Duration::from_secs(5));
    let settings = EngineSettings {
        require_reachable: !exec,
        ..settings(None)
    };
    let started = tokio::time::Instant::now();
    let (report, events, connector) = run_with(plan, connector, settings).await;
    (report, events, connector, started)
}

/// The events of that run, as `(event, host)` for host connections and
/// finished steps.
async fn order_with_a_slow_host(exec: bool) -> Vec<(&'static str, String)> {
    let (_, events, _, _) = run_with_a_slow_host(exec).await;
    let mut order = Vec::new();
    for event in events {
        match event {
            Event::HostConnected { host, .. } => order.push(("connected", host)),
            Event::StepFinished { host, .. } => order.push(("step done", host)),
            _ => {}
        }
    }
    order
}

#[tokio::test(start_paused = true)]
async fn exec_starts_on_a_host_as_soon_as_it_is_connected() {
    let order = order_with_a_slow_host(true).await;
    assert_eq!(
        order,
        [
            ("connected", "h1".to_string()),
            ("step done", "h1".to_string()),
            ("connected", "h2".to_string()),
            ("step done", "h2".to_string()),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_rollout_starts_no_batch_before_every_host_is_connected() {
    let order = order_with_a_slow_host(false).await;
    assert_eq!(
        order,
        [
            ("connected", "h1".to_string()),
            ("connected", "h2".to_string()),
            ("step done", "h1".to_string()),
            ("step done", "h2".to_string()),
        ]
    );
}

/// When each host's connection was closed in that run, from its start.
async fn close_times_with_a_slow_host(exec: bool) -> Vec<(String, Duration)> {
    let (report, _, connector, started) = run_with_a_slow_host(exec).await;
    assert!(report.hosts.iter().all(|h| h.state.is_done()), "{report:?}");
    let closed = connector.closed.lock().expect("close log").clone();
    closed
        .into_iter()
        .map(|(host, at)| (host, at - started))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn exec_closes_a_hosts_connection_as_soon_as_its_command_is_done() {
    let closed = close_times_with_a_slow_host(true).await;
    let hosts: Vec<&str> = closed.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(hosts, ["h1", "h2"], "each connection closed once");
    assert!(
        closed[0].1 < Duration::from_secs(5),
        "h1 closed before h2 connected: {closed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rollout_holds_every_connection_until_the_end() {
    let closed = close_times_with_a_slow_host(false).await;
    let mut hosts: Vec<&str> = closed.iter().map(|(h, _)| h.as_str()).collect();
    hosts.sort();
    assert_eq!(hosts, ["h1", "h2"], "each connection closed once");
    assert!(
        closed.iter().all(|(_, at)| *at >= Duration::from_secs(5)),
        "no connection closed before the whole fleet was done: {closed:?}"
    );
}

/// The skip events of `host`: (step, reason, rollback).
fn skips(events: &[Event], host: &str) -> Vec<(usize, String, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StepSkipped {
                host: h,
                step,
                reason,
                rollback,
                ..
            } if h == host => Some((*step, reason.clone(), *rollback)),
            _ => None,
        })
        .collect()
}

fn report_of<'r>(report: &'r RunReport, host: &str) -> &'r crate::event::HostReport {
    report.hosts.iter().find(|h| h.host == host).expect("host")
}

#[tokio::test(start_paused = true)]
async fn a_step_whose_when_is_false_is_skipped_there_and_its_capture_is_empty() {
    let playbook = "hosts: web\nsteps:\n  - run: echo one\n  - run: readlink current\n    capture: previous\n    when: inventory_hostname == 'h2'\n  - run: deploy --from {{ previous }}\n  - run: fail-now\nrollback:\n  - run: undo-h1\n    when: inventory_hostname_short == 'h1'\n  - run: undo-all\n";
    let (plan, _dir) = plan(2, playbook, None);
    let fake = FakeConnector::default()
        .rule("h2", Rule::new("readlink", 0).stdout("/srv/v1\n"))
        .rule("h1", Rule::new("fail-now", 1))
        .rule("h2", Rule::new("fail-now", 1));
    let (report, events, fake) = run(plan, fake).await;
    let h1 = fake.commands("h1");
    assert!(!h1.iter().any(|c| c.contains("readlink")), "{h1:?}");
    assert!(h1[1].contains("deploy --from ''"), "{h1:?}");
    assert!(h1.iter().any(|c| c.contains("undo-h1")), "{h1:?}");
    let h2 = fake.commands("h2");
    assert!(h2[1].contains("readlink"), "{h2:?}");
    assert!(h2[2].contains("deploy --from /srv/v1"), "{h2:?}");
    assert!(!h2.iter().any(|c| c.contains("undo-h1")), "{h2:?}");
    assert!(h2.iter().any(|c| c.contains("undo-all")), "{h2:?}");
    assert_eq!(
        skips(&events, "h1"),
        [(2, "when: inventory_hostname == 'h2'".to_string(), false)]
    );
    assert_eq!(
        skips(&events, "h2"),
        [(
            1,
            "when: inventory_hostname_short == 'h1'".to_string(),
            true
        )]
    );
    // Not run, so not done: the report counts it apart.
    assert_eq!(report_of(&report, "h1").steps_skipped, 1);
    assert_eq!(report_of(&report, "h1").steps_ok, 2);
    assert_eq!(report_of(&report, "h2").steps_skipped, 0);
    assert_eq!(report_of(&report, "h2").steps_ok, 3);
    let finished = events.iter().filter(|e| matches!(e, Event::StepFinished { host, step: 2, rollback: false, .. } if host == "h1")).count();
    assert_eq!(finished, 0, "a skipped step has no step_finished");
}

#[tokio::test(start_paused = true)]
async fn a_once_step_runs_if_its_when_holds_on_its_host_and_else_nowhere() {
    let playbook = "hosts: web\nsteps:\n  - run: migrate\n    once: true\n    when: inventory_hostname == ansible_play_hosts[0]\n  - run: seed\n    once: true\n    when: inventory_hostname == 'h3'\n  - run: restart\n";
    let (plan, _dir) = plan(3, playbook, Some("2"));
    let (report, events, fake) = run(plan, FakeConnector::default()).await;
    assert!(report.all_done(), "{report:?}");
    let all: Vec<String> = ["h1", "h2", "h3"]
        .iter()
        .flat_map(|h| fake.commands(h))
        .collect();
    assert_eq!(all.iter().filter(|c| c.contains("migrate")).count(), 1);
    assert!(!all.iter().any(|c| c.contains("seed")), "{all:?}");
    assert_eq!(all.iter().filter(|c| c.contains("restart")).count(), 3);
    let h3 = skips(&events, "h3");
    assert_eq!(h3[0], (1, "once: ran on h1".to_string(), false));
    assert_eq!(
        h3[1],
        (
            2,
            "once: skipped on h1, when: inventory_hostname == 'h3'".to_string(),
            false
        )
    );
    assert_eq!(report_of(&report, "h3").steps_skipped, 1);
}

#[tokio::test(start_paused = true)]
async fn a_secret_of_another_host_through_hostvars_never_reaches_events_or_reports() {
    let hosts = "        h1: {}\n        h2: { token: Tok-of-h2, herd_secret_vars: token }\n";
    let playbook = "hosts: web\nsteps:\n  - name: call h2 with {{ nothing }}\n    run: call {{ hostvars['h2'].token | lower }} {{ hostvars.h2.token }}\n    when: \"hostvars['h2'].token == 'Tok-of-h2' and inventory_hostname == 'h1'\"\n";
    let playbook = playbook.replace(" with {{ nothing }}", "");
    let (plan, _dir) = plan_of(hosts, &playbook, None);
    let shown = crate::describe::plan(&plan);
    let fake = FakeConnector::default().rule(
        "h1",
        Rule::new("call", 1)
            .stdout("said tok-of-h2\n")
            .stderr("bad token Tok-of-h2\n"),
    );
    let (report, events, fake) = run(plan, fake).await;
    assert!(fake.commands("h1")[0].contains("call tok-of-h2 Tok-of-h2"));
    assert!(fake.commands("h2").is_empty());
    let json: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).expect("json"))
        .collect();
    let text = format!(
        "{shown}{events:?}{json:?}{report:?}{}{}",
        crate::report::summary::render(&report),
        crate::report::junit::render("t", &report)
    );
    assert!(!text.to_lowercase().contains("tok-of-h2"), "{text}");
    assert!(text.contains("bad token ***"), "{text}");
    assert!(
        text.contains("when: hostvars['h2'].token == '***'"),
        "{text}"
    );
}
