//! The reload procedure on the scripted transport, with tokio's paused clock.

use std::time::Duration;

use super::snapshot::fixtures::{bystanders, stat};
use super::*;
use crate::reload::server::GUNICORN;
use crate::transport::fake::{FakeConnector, Rule};
use crate::transport::{Connector, Target};

fn target() -> Target {
    Target {
        name: "h1".into(),
        address: "h1".into(),
        port: 22,
        user: "u".into(),
        identity_files: Vec::new(),
        known_hosts: "/dev/null".into(),
        jump: None,
    }
}

/// A /proc dump: a pidfile naming `pidfile`, master `master` (unless 0) with `workers`.
fn procs(pidfile: u32, master: u32, workers: &[u32]) -> String {
    let mut text = format!("--herd pidfile\n{pidfile}\n\n--herd procs\n");
    text.push_str(&bystanders());
    if master != 0 {
        text.push_str(&stat(
            master,
            "gunicorn",
            'S',
            1,
            1000,
            "gunicorn: master [app]",
        ));
        text.push('\n');
        for &w in workers {
            text.push_str(&stat(
                w,
                "gunicorn",
                'S',
                master,
                1000 + u64::from(w),
                "gunicorn: worker [app]",
            ));
            text.push('\n');
        }
    }
    text
}

fn spec() -> ReloadSpec {
    ReloadSpec {
        server: &server::GUNICORN,
        place: Place::Host(place::OnHost::Pidfile("/srv/app/gunicorn.pid".into())),
        delivery: Delivery::Kill,
        signal: &crate::reload::server::GUNICORN.signals[0],
        become_: false,
        become_user: None,
        preflight: None,
        preload: None,
        start: None,
        validate: ValidateSpec {
            timeout: Duration::from_secs(30),
            settle: Some(Duration::from_secs(1)),
            poll: Duration::from_millis(200),
            http: Some(HttpCheck {
                url: "http://127.0.0.1:8000/healthz".into(),
                status: 200,
                contains: Some("v2".into()),
            }),
            run: None,
            cancel: None,
        },
        command_timeout: Duration::from_secs(10),
        mask: Default::default(),
    }
}

async fn reload_with(
    fake: FakeConnector,
    spec: &ReloadSpec,
) -> (Result<ReloadReport, ReloadFailure>, Vec<String>) {
    let connection = fake.connect(&target()).await.expect("fake connects");
    let result = reload(&connection, spec).await;
    (result, fake.commands("h1"))
}

/// What the host-side signal command answers: every signal goes out.
const SIGNAL: &str = "herd: signal one process";

/// A host whose signals reach the proven master.
fn fake() -> FakeConnector {
    FakeConnector::default().rule("h1", Rule::new(SIGNAL, 0).stdout("signalled\n"))
}

/// The signals asked for, as `HUP 500`, in order.
fn signals(commands: &[String]) -> Vec<String> {
    commands
        .iter()
        .filter(|c| c.contains(SIGNAL))
        .filter_map(|c| {
            let args = c.split("set -- ").nth(1)?.lines().next()?;
            let words: Vec<&str> = args.split_whitespace().collect();
            Some(format!("{} {}", words.first()?, words.get(1)?))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn hup_replaces_every_worker_under_the_same_master() {
    let snapshots = vec![
        procs(500, 500, &[501, 502]),
        procs(500, 500, &[501, 502, 601]),
        procs(500, 500, &[601, 602]),
    ];
    let fake = fake()
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots))
        .http("h1", 200, "ok v2\n");
    let (result, commands) = reload_with(fake, &spec()).await;
    let report = result.expect("the reload works");
    assert_eq!(report.master_pid, Some(500));
    assert_eq!(report.old_workers, vec![501, 502]);
    assert_eq!(report.new_workers, vec![601, 602]);
    assert_eq!(signals(&commands), vec!["HUP 500"]);
    assert!(commands.iter().any(|c| c == "tunnel 127.0.0.1:8000"));
}

#[tokio::test(start_paused = true)]
async fn a_master_that_exits_after_hup_fails_validation() {
    let snapshots = vec![procs(500, 500, &[501, 502]), procs(0, 0, &[])];
    let fake = fake().rule("h1", Rule::new("--herd procs", 0).sequence(snapshots));
    let (result, _) = reload_with(fake, &spec()).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::SameMaster);
    assert!(
        failure.message.contains("exited after HUP"),
        "{}",
        failure.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_preflight_signals_nothing() {
    let fake = fake()
        .rule(
            "h1",
            Rule::new("--herd procs", 0).stdout(&procs(500, 500, &[501, 502])),
        )
        .rule(
            "h1",
            Rule::new("check-config", 1).stderr("ImportError: no module named app\n"),
        );
    let mut spec = spec();
    spec.preflight = Some("gunicorn --check-config app".into());
    let (result, commands) = reload_with(fake, &spec).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Preflight);
    assert!(
        failure.message.contains("ImportError"),
        "{}",
        failure.message
    );
    assert!(signals(&commands).is_empty(), "{commands:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stale_pidfile_is_never_signalled() {
    let fake = fake().rule(
        "h1",
        Rule::new("--herd procs", 0).stdout(&procs(300, 500, &[501])),
    );
    let (result, commands) = reload_with(fake, &spec()).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Master);
    assert!(
        failure.message.contains("stale pidfile"),
        "{}",
        failure.message
    );
    assert!(signals(&commands).is_empty());
}

#[tokio::test(start_paused = true)]
async fn workers_that_never_come_back_fail_within_the_timeout() {
    let snapshots = vec![procs(500, 500, &[501, 502]), procs(500, 500, &[601])];
    let fake = fake().rule("h1", Rule::new("--herd procs", 0).sequence(snapshots));
    let started = tokio::time::Instant::now();
    let (result, _) = reload_with(fake, &spec()).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Workers);
    assert!(
        failure.message.contains("1 of 2 new workers"),
        "{}",
        failure.message
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(32),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_old_release_in_the_response_fails_the_http_proof() {
    let snapshots = vec![procs(500, 500, &[501, 502]), procs(500, 500, &[601, 602])];
    let fake = fake()
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots))
        .http("h1", 200, "ok v1\n");
    let (result, _) = reload_with(fake, &spec()).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Http);
    assert!(
        failure.message.contains("does not contain `v2`"),
        "{}",
        failure.message
    );
    assert_eq!(failure.report.new_workers, vec![601, 602]);
}

#[tokio::test(start_paused = true)]
async fn a_master_without_workers_is_not_signalled() {
    let fake = fake().rule(
        "h1",
        Rule::new("--herd procs", 0).stdout(&procs(500, 500, &[])),
    );
    let started = tokio::time::Instant::now();
    let (result, commands) = reload_with(fake, &spec()).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Master);
    assert_eq!(
        failure.message,
        "master 500 has no workers (they do not boot, or it runs none): it serves nothing and a reload could not be proven; nothing was signalled"
    );
    assert!(signals(&commands).is_empty(), "{commands:?}");
    assert!(!failure.report.server_touched());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_master_between_two_workers_is_looked_at_again() {
    let snapshots = vec![
        procs(500, 500, &[]),
        procs(500, 500, &[501, 502]),
        procs(500, 500, &[601, 602]),
    ];
    let fake = fake()
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots))
        .http("h1", 200, "ok v2\n");
    let (result, commands) = reload_with(fake, &spec()).await;
    let report = result.unwrap();
    assert_eq!(report.old_workers, vec![501, 502]);
    assert_eq!(signals(&commands).len(), 1, "{commands:?}");
}

#[tokio::test(start_paused = true)]
async fn a_become_command_holding_a_secret_goes_to_sudo_on_stdin() {
    let fake = fake()
        .rule(
            "h1",
            Rule::new("--herd procs", 0).stdout(&procs(500, 500, &[501, 502])),
        )
        .rule("h1", Rule::new("check-with", 1));
    let mut spec = spec();
    spec.become_ = true;
    spec.preflight = Some("check-with Pr1vateTOKEN".into());
    spec.mask.secrets.record("Pr1vateTOKEN");
    let (result, commands) = reload_with(fake, &spec).await;
    assert_eq!(result.unwrap_err().proof, Proof::Preflight);
    let preflight: Vec<&String> = commands
        .iter()
        .filter(|c| c.contains("check-with"))
        .collect();
    assert_eq!(preflight.len(), 1, "{commands:?}");
    assert!(
        preflight[0].starts_with("printf '%s\\n' 'check-with Pr1vateTOKEN' | sudo -n -H -u root -- /bin/sh -c 'eval \"$(cat)\"'"),
        "{commands:?}"
    );
    // Commands without it keep the form a sudoers rule can name.
    assert!(
        commands
            .iter()
            .filter(|c| c.contains("--herd procs"))
            .all(|c| c.starts_with("sudo -n -H -u root -- /bin/sh -c ")),
        "{commands:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_health_check_that_never_answers_ends_with_the_timeout_or_ctrl_c() {
    let snapshots = vec![procs(500, 500, &[501, 502]), procs(500, 500, &[601, 602])];
    let hanging = || {
        fake()
            .rule(
                "h1",
                Rule::new("--herd procs", 0).sequence(snapshots.clone()),
            )
            .http_hanging("h1")
    };
    // Each try is bounded by what is left of validate.timeout, not by the
    // longer command timeout.
    let mut spec = spec();
    spec.validate.timeout = Duration::from_secs(3);
    spec.command_timeout = Duration::from_secs(600);
    let started = tokio::time::Instant::now();
    let (result, _) = reload_with(hanging(), &spec).await;
    assert_eq!(result.unwrap_err().proof, Proof::Http);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    // Ctrl-C ends a try in flight.
    let (stop, cancel) = tokio::sync::watch::channel(false);
    spec.validate.timeout = Duration::from_secs(300);
    spec.validate.cancel = Some(cancel);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        let _ = stop.send(true);
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let started = tokio::time::Instant::now();
    let (result, _) = reload_with(hanging(), &spec).await;
    let failure = result.unwrap_err();
    assert!(
        failure.message.ends_with(super::INTERRUPTED),
        "{}",
        failure.message
    );
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(6), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_during_the_preflight_sends_no_signal() {
    let fake = fake()
        .rule(
            "h1",
            Rule::new("--herd procs", 0).stdout(&procs(500, 500, &[501, 502])),
        )
        .rule(
            "h1",
            Rule::new("slow-check", 0).delay(Duration::from_secs(5)),
        );
    let (stop, cancel) = tokio::sync::watch::channel(false);
    let mut spec = spec();
    spec.preflight = Some("slow-check".into());
    spec.validate.cancel = Some(cancel);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = stop.send(true);
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let (result, commands) = reload_with(fake, &spec).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Signal);
    assert_eq!(
        failure.message,
        "stopped by Ctrl-C before the signal; nothing was signalled"
    );
    assert!(signals(&commands).is_empty(), "{commands:?}");
    assert!(!failure.report.server_touched());
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_ends_the_wait_for_the_health_check_at_once() {
    let snapshots = vec![procs(500, 500, &[501, 502]), procs(500, 500, &[601, 602])];
    let fake = fake()
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots))
        .http("h1", 200, "ok v1\n");
    let (stop, cancel) = tokio::sync::watch::channel(false);
    let mut spec = spec();
    spec.validate.cancel = Some(cancel);
    let started = tokio::time::Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = stop.send(true);
        // The run goes on after Ctrl-C: so does the sender.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let (result, _) = reload_with(fake, &spec).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Http);
    assert_eq!(
        failure.message,
        format!("http://127.0.0.1:8000/healthz: {}", super::INTERRUPTED)
    );
    // The HUP went out before; the wait ended with Ctrl-C, not at 30s.
    assert!(failure.report.server_touched());
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_response_quoted_in_the_failure_stays_on_one_line() {
    let snapshots = vec![procs(500, 500, &[501, 502]), procs(500, 500, &[601, 602])];
    let fake = fake()
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots))
        .http("h1", 200, "ok v1\nh1: reload: ok\r\x1b[2K done\n");
    let (result, _) = reload_with(fake, &spec()).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Http);
    assert!(
        failure
            .message
            .ends_with("does not contain `v2` (the new release is not served): `ok v1 h1: reload: ok  [2K done`"),
        "{}",
        failure.message
    );
}

#[tokio::test(start_paused = true)]
async fn restore_starts_the_server_when_no_master_is_left() {
    let snapshots = vec![
        procs(0, 0, &[]),
        procs(0, 0, &[]),
        procs(700, 700, &[701, 702]),
    ];
    let fake = fake()
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots))
        .http("h1", 200, "ok v2\n");
    let mut spec = spec();
    spec.start = Some("start-the-app".into());
    let connection = fake.connect(&target()).await.expect("fake connects");
    let report = restore(&connection, &spec).await.expect("started");
    assert!(report.started);
    assert_eq!(report.master_pid, Some(700));
    assert!(fake
        .commands("h1")
        .iter()
        .any(|c| c.contains("start-the-app")));
    assert!(signals(&fake.commands("h1")).is_empty());
}

/// A look after USR2: the old master 500 with workers 501-502, and the new
/// master 800, its child, with `workers`.
fn beside_new_master(workers: &[u32]) -> String {
    let mut look = procs(500, 500, &[501, 502]);
    look.push_str(&stat(
        800,
        "gunicorn",
        'S',
        500,
        3000,
        "gunicorn: master [app.2]",
    ));
    look.push('\n');
    for &w in workers {
        look.push_str(&stat(
            w,
            "gunicorn",
            'S',
            800,
            3001,
            "gunicorn: worker [app.2]",
        ));
        look.push('\n');
    }
    look
}

/// After USR2: the old master 500 with workers 501-502, then `during`
/// looks with the new master 800 (workers 801-802) beside it, then 800
/// alone and promoted.
fn usr2_snapshots(during_looks: usize) -> Vec<String> {
    let during = beside_new_master(&[801, 802]);
    let mut after = procs(800, 0, &[]);
    after.push_str(&stat(
        800,
        "gunicorn",
        'S',
        1,
        3000,
        "gunicorn: master [app]",
    ));
    after.push('\n');
    for w in [801, 802] {
        after.push_str(&stat(
            w,
            "gunicorn",
            'S',
            800,
            3001,
            "gunicorn: worker [app]",
        ));
        after.push('\n');
    }
    let mut snapshots = vec![procs(500, 500, &[501, 502])];
    snapshots.extend(std::iter::repeat_n(during, during_looks));
    snapshots.push(after);
    snapshots
}

#[tokio::test(start_paused = true)]
async fn usr2_brings_up_a_new_master_then_ends_the_old_one() {
    let fake = fake()
        .rule(
            "h1",
            Rule::new("--herd procs", 0).sequence(usr2_snapshots(6)),
        )
        .http("h1", 200, "ok v2\n");
    let mut spec = spec();
    spec.signal = &GUNICORN.signals[1];
    let (result, commands) = reload_with(fake, &spec).await;
    let report = result.expect("USR2 works");
    assert_eq!(signals(&commands), vec!["USR2 500", "TERM 500"]);
    assert_eq!(report.new_master_pid, Some(800));
    assert_eq!(report.new_workers, vec![801, 802]);
}

#[tokio::test(start_paused = true)]
async fn usr2_ends_the_old_master_as_soon_as_the_new_workers_proved_they_booted() {
    let fake = fake()
        .rule(
            "h1",
            Rule::new("--herd procs", 0).sequence(usr2_snapshots(1)),
        )
        .rule("h1", boot_answer("801 booted\n802 booted\n"))
        .http("h1", 200, "ok v2\n");
    let mut spec = spec();
    spec.signal = &GUNICORN.signals[1];
    spec.validate.settle = None;
    let started = tokio::time::Instant::now();
    let (result, commands) = reload_with(fake, &spec).await;
    result.expect("USR2 works");
    assert_eq!(signals(&commands), vec!["USR2 500", "TERM 500"]);
    let wait = commands
        .iter()
        .find(|c| c.contains(boot::MARKER))
        .expect("a wait for the new master's workers");
    assert!(wait.contains("m=800;"), "{wait}");
    assert!(wait.contains("for w in 801 802;"), "{wait}");
    // Polls after TERM only, no settle period.
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn usr2_keeps_the_old_master_when_a_new_worker_dies_before_it_booted() {
    // The new master outlives its worker (a worker killed by a signal is
    // replaced, not fatal): herd ends it, and then it is gone.
    let mut snapshots = usr2_snapshots(1);
    snapshots.pop();
    snapshots.push(procs(500, 500, &[501, 502]));
    let fake = fake()
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots))
        .rule("h1", boot_answer("801 booted\n802 dead\n"));
    let mut spec = spec();
    spec.signal = &GUNICORN.signals[1];
    spec.validate.settle = None;
    let (result, commands) = reload_with(fake, &spec).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Workers);
    assert_eq!(
        failure.message,
        "the new master 800's worker 802 exited before it booted (does the new release boot?); the old master 500 still serves; the new master 800 was sent TERM and exited"
    );
    assert_eq!(
        signals(&commands),
        vec!["USR2 500", "TERM 800"],
        "TERM to the new master only, never to the old one"
    );
}

#[tokio::test(start_paused = true)]
async fn usr2_that_times_out_ends_the_new_master_it_saw() {
    // A new master whose workers never come up in full.
    let during = beside_new_master(&[801]);
    let mut snapshots = vec![procs(500, 500, &[501, 502])];
    snapshots.extend(std::iter::repeat_n(during, 40));
    snapshots.push(procs(500, 500, &[501, 502]));
    let fake = fake().rule("h1", Rule::new("--herd procs", 0).sequence(snapshots));
    let mut spec = spec();
    spec.signal = &GUNICORN.signals[1];
    spec.validate.timeout = Duration::from_secs(5);
    let (result, commands) = reload_with(fake, &spec).await;
    let failure = result.unwrap_err();
    assert_eq!(
        failure.message,
        "no new master with 2 workers within 5s after USR2 (does the new release boot?); the old master 500 still serves; the new master 800 was sent TERM and exited"
    );
    assert_eq!(signals(&commands), vec!["USR2 500", "TERM 800"]);
}

#[tokio::test(start_paused = true)]
async fn restore_waits_for_a_dead_master_to_be_reaped_before_starting() {
    let mut zombie = format!("--herd pidfile\n500\n\n--herd procs\n{}", bystanders());
    zombie.push_str(&stat(500, "gunicorn", 'Z', 1, 1000, ""));
    zombie.push('\n');
    let snapshots = vec![
        zombie.clone(),
        zombie,
        procs(0, 0, &[]),
        procs(700, 700, &[701, 702]),
    ];
    let fake = fake()
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots))
        .http("h1", 200, "ok v1\n");
    let mut spec = spec();
    spec.start = Some("start-the-app".into());
    let connection = fake.connect(&target()).await.expect("fake connects");
    let report = restore(&connection, &spec)
        .await
        .expect("started once the zombie was gone");
    assert!(report.started);
    assert_eq!(report.master_pid, Some(700));
    let commands = fake.commands("h1");
    let start_at = commands
        .iter()
        .position(|c| c.contains("start-the-app"))
        .expect("started");
    let snapshots_before = commands[..start_at]
        .iter()
        .filter(|c| c.contains("--herd procs"))
        .count();
    assert_eq!(snapshots_before, 3, "{commands:?}");
}

/// A snapshot where pid `pid` belongs to an unrelated process started at `start`.
fn reused(pidfile: u32, pid: u32, start: u64) -> String {
    let mut text = procs(pidfile, 0, &[]);
    text.push_str(&stat(pid, "sleep", 'S', 1, start, "sleep 300"));
    text.push('\n');
    text
}

#[tokio::test(start_paused = true)]
async fn a_pid_reused_between_proof_and_signal_is_not_signalled() {
    let snapshots = vec![procs(500, 500, &[501, 502]), reused(500, 500, 7777)];
    let fake = FakeConnector::default()
        .rule("h1", Rule::new(SIGNAL, 0).stdout("changed 7777\n"))
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots));
    let (result, commands) = reload_with(fake, &spec()).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Signal);
    assert_eq!(
        failure.message,
        "the master 500 exited before HUP, which was not sent, and no master can be started: \
         the pidfile /srv/app/gunicorn.pid names pid 500, which is not Gunicorn but `sleep 300`: \
         a stale pidfile; that process was not signalled"
    );
    assert_eq!(
        failure.report.signals,
        vec![SignalRecord {
            signal: "HUP".into(),
            pid: 500,
            outcome: Outcome::Changed,
            via: Delivery::Kill,
        }]
    );
    // The host was asked to signal only the process that started at the
    // proven time (1000), and nothing else was signalled or started.
    let asked: Vec<&String> = commands.iter().filter(|c| c.contains(SIGNAL)).collect();
    assert_eq!(asked.len(), 1, "{commands:?}");
    assert!(
        asked[0].starts_with("set -- HUP 500 1000\n"),
        "{}",
        asked[0]
    );
    assert!(!failure.report.started);
}

#[tokio::test(start_paused = true)]
async fn a_master_gone_before_the_signal_is_started_with_reload_start() {
    let snapshots = vec![
        procs(500, 500, &[501, 502]),
        procs(0, 0, &[]),
        procs(700, 700, &[701, 702]),
    ];
    let fake = FakeConnector::default()
        .rule("h1", Rule::new(SIGNAL, 0).stdout("gone\n"))
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots))
        .http("h1", 200, "ok v2\n");
    let mut spec = spec();
    spec.start = Some("start-the-app".into());
    let (result, commands) = reload_with(fake, &spec).await;
    let report = result.expect("started");
    assert!(report.started);
    assert_eq!(report.master_pid, Some(500));
    assert_eq!(report.new_master_pid, Some(700));
    assert_eq!(report.new_workers, vec![701, 702]);
    assert_eq!(report.signals[0].outcome, Outcome::Gone);
    assert!(report.server_touched());
    assert!(commands.iter().any(|c| c.contains("start-the-app")));
}

#[tokio::test(start_paused = true)]
async fn a_master_gone_before_the_signal_without_reload_start_leaves_the_host_down() {
    let snapshots = vec![procs(500, 500, &[501, 502]), procs(0, 0, &[])];
    let fake = FakeConnector::default()
        .rule("h1", Rule::new(SIGNAL, 0).stdout("gone\n"))
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots));
    let (result, _) = reload_with(fake, &spec()).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Start);
    assert_eq!(
        failure.message,
        "the master 500 exited before HUP, which was not sent; no master is running and the playbook has no `reload.start`: the host is DOWN"
    );
    // The refused HUP is on record; nothing was started.
    assert!(failure.report.server_touched());
    assert!(!failure.report.started, "{:?}", failure.report);
}

#[tokio::test(start_paused = true)]
async fn contact_lost_after_the_signal_is_reported_as_such() {
    let snapshots = vec![procs(500, 500, &[501, 502])];
    let black_hole = Duration::from_secs(3600);
    let fake = fake()
        // The look after HUP (it waits for workers on the host) and the
        // check that the connection is up get no answer.
        .rule("h1", Rule::new("old='", 0).delay(black_hole))
        .rule("h1", Rule::new(CONTACT_PROBE_COMMAND, 0).delay(black_hole))
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots));
    let (result, commands) = reload_with(fake, &spec()).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Contact);
    assert!(
        failure
            .message
            .starts_with("contact lost after the signal (the command timed out after 10s): the host's state is unknown"),
        "{}",
        failure.message
    );
    assert_eq!(signals(&commands), vec!["HUP 500"]);
}

#[tokio::test(start_paused = true)]
async fn a_hung_look_after_the_signal_is_given_up_well_before_the_command_timeout() {
    let snapshots = vec![procs(500, 500, &[501, 502])];
    let black_hole = Duration::from_secs(3600);
    let fake = fake()
        .rule("h1", Rule::new("old='", 0).delay(black_hole))
        .rule("h1", Rule::new(CONTACT_PROBE_COMMAND, 0).delay(black_hole))
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots));
    let mut spec = spec();
    spec.command_timeout = Duration::from_secs(600);
    let started = tokio::time::Instant::now();
    let (result, _) = reload_with(fake, &spec).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Contact);
    assert!(
        failure
            .message
            .ends_with("(last seen: reading /proc: the command timed out after 20s)"),
        "{}",
        failure.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_proof_on_a_live_connection_is_not_contact_lost() {
    let snapshots = vec![procs(500, 500, &[501, 502]), procs(0, 0, &[])];
    let fake = fake().rule("h1", Rule::new("--herd procs", 0).sequence(snapshots));
    let (result, commands) = reload_with(fake, &spec()).await;
    assert_eq!(result.unwrap_err().proof, Proof::SameMaster);
    assert!(commands.iter().any(|c| c == CONTACT_PROBE_COMMAND));
}

/// What a reload saw before contact was lost: master 500, workers 501 and 502, HUP sent.
fn seen_before_contact_was_lost() -> ReloadReport {
    ReloadReport {
        master_pid: Some(500),
        old_workers: vec![501, 502],
        signals: vec![SignalRecord {
            signal: "HUP".into(),
            pid: 500,
            outcome: Outcome::Sent,
            via: Delivery::Kill,
        }],
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn on_a_new_connection_the_new_release_is_found_serving() {
    let fake = fake()
        .rule(
            "h1",
            Rule::new("--herd procs", 0).stdout(&procs(500, 500, &[601, 602])),
        )
        .http("h1", 200, "ok v2\n");
    let connection = fake.connect(&target()).await.expect("fake connects");
    let report = find_out(&connection, &spec(), &seen_before_contact_was_lost())
        .await
        .expect("the new release serves");
    assert_eq!(report.new_workers, vec![601, 602]);
    assert!(signals(&fake.commands("h1")).is_empty());
}

#[tokio::test(start_paused = true)]
async fn on_a_new_connection_old_workers_or_another_master_fail_the_reload() {
    for (snapshot, wanted) in [
        (
            procs(500, 500, &[501, 602]),
            "master 500 has workers [501, 602], old ones among them: [501]",
        ),
        (procs(700, 700, &[701, 702]), "master 700 serves, not 500"),
    ] {
        let fake = fake()
            .rule("h1", Rule::new("--herd procs", 0).stdout(&snapshot))
            .http("h1", 200, "ok v2\n");
        let connection = fake.connect(&target()).await.expect("fake connects");
        let failure = find_out(&connection, &spec(), &seen_before_contact_was_lost())
            .await
            .unwrap_err();
        assert_eq!(failure.message, wanted);
        assert!(signals(&fake.commands("h1")).is_empty());
    }
}

/// A container `web` whose PID 1 (host pid 500) is the master, as the
/// engine describes it (`started` is its start time) and /proc shows it.
fn in_container(started: &str, workers: &[u32]) -> String {
    let procs = procs(0, 500, workers);
    let procs = procs.split("--herd procs\n").nth(1).unwrap_or_default();
    format!("--herd container\nengine=podman\nrc=0\nherd-data 500 true 0 web {started}\n--herd procs\n{procs}")
}

fn container_spec() -> ReloadSpec {
    ReloadSpec {
        place: Place::Container {
            engine: Some(place::Engine::Podman),
            name: "web".into(),
        },
        delivery: Delivery::Auto,
        become_: true,
        ..spec()
    }
}

#[tokio::test(start_paused = true)]
async fn a_container_restarted_during_the_reload_fails_the_same_master_proof() {
    // Same master pid and workers replaced, but the engine says the
    // container started again meanwhile: not the reload herd proved.
    let snapshots = vec![
        in_container("2026-11-29T10:00:00Z", &[501, 502]),
        in_container("2026-11-29T10:00:00Z", &[601, 602]),
        in_container("2026-11-29T10:00:07Z", &[601, 602]),
    ];
    let fake = FakeConnector::default()
        .rule("h1", Rule::new("podman kill", 0))
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots))
        .http("h1", 200, "ok v2\n");
    let (result, commands) = reload_with(fake, &container_spec()).await;
    let failure = result.expect_err("a restarted container is no reload");
    assert_eq!(failure.proof, Proof::SameMaster);
    assert_eq!(
        failure.message,
        "the container web was restarted during the reload (started at 2026-11-29T10:00:00Z then 2026-11-29T10:00:07Z, restarts 0 then 0, running: true)"
    );
    // The signal went through the engine, as root, to the container by name.
    assert!(
        commands
            .iter()
            .any(|c| c == "sudo -n -u root -- podman kill --signal=HUP web"),
        "{commands:#?}"
    );
    // /proc was read as the login account: no snapshot went through sudo.
    assert!(
        commands
            .iter()
            .filter(|c| c.contains("--herd procs"))
            .all(|c| !c.starts_with("sudo")),
        "{commands:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_container_kept_through_the_reload_passes() {
    let snapshots = vec![
        in_container("2026-11-29T10:00:00Z", &[501, 502]),
        in_container("2026-11-29T10:00:00Z", &[601, 602]),
    ];
    let fake = FakeConnector::default()
        .rule("h1", Rule::new("podman kill", 0))
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots))
        .http("h1", 200, "ok v2\n");
    let (result, _) = reload_with(fake, &container_spec()).await;
    let report = result.expect("the reload works");
    assert_eq!(report.delivery, Some(Delivery::ContainerKill));
    assert_eq!(report.new_workers, vec![601, 602]);
}

/// What the host-side boot wait answers, for the workers it was given.
fn boot_answer(answer: &str) -> Rule {
    Rule::new(boot::MARKER, 0).stdout(answer)
}

/// After HUP: the old set, then the new one, which stays.
fn replaced() -> Rule {
    Rule::new("--herd procs", 0).sequence(vec![
        procs(500, 500, &[501, 502]),
        procs(500, 500, &[601, 602]),
    ])
}

#[tokio::test(start_paused = true)]
async fn workers_proven_booted_end_the_wait_with_no_settle_period() {
    let fake = fake()
        .rule("h1", replaced())
        .rule("h1", boot_answer("601 booted\n602 booted\n"))
        .http("h1", 200, "ok v2\n");
    let mut spec = spec();
    spec.validate.settle = None;
    let started = tokio::time::Instant::now();
    let (result, commands) = reload_with(fake, &spec).await;
    let report = result.expect("the reload works");
    assert_eq!(report.new_workers, vec![601, 602]);
    let waits: Vec<&String> = commands
        .iter()
        .filter(|c| c.contains(boot::MARKER))
        .collect();
    assert_eq!(waits.len(), 1, "{commands:?}");
    assert!(waits[0].contains("for w in 601 602;"), "{}", waits[0]);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_dies_before_it_booted_fails_at_once() {
    // The master outlives its worker: the worker is named.
    let host = fake()
        .rule("h1", replaced())
        .rule("h1", boot_answer("601 booted\n602 dead\n"));
    let mut spec = spec();
    spec.validate.settle = None;
    let started = tokio::time::Instant::now();
    let (result, _) = reload_with(host, &spec).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Workers);
    assert_eq!(
        failure.message,
        "the new worker 602 exited before it booted (does the new release boot?)"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // The master exited with it (what Gunicorn does): the master is named.
    let fake = fake()
        .rule(
            "h1",
            Rule::new("--herd procs", 0).sequence(vec![
                procs(500, 500, &[501, 502]),
                procs(500, 500, &[601, 602]),
                procs(0, 0, &[]),
            ]),
        )
        .rule("h1", boot_answer("601 dead\n602 waiting\n"));
    let (result, _) = reload_with(fake, &spec).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::SameMaster);
    assert!(
        failure.message.starts_with(
            "the master 500 exited after HUP (its new worker 601 exited before it booted"
        ),
        "{}",
        failure.message
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_readable_proof_the_default_settle_period_stands_in() {
    let fake = fake()
        .rule("h1", replaced())
        .rule("h1", boot_answer("601 booted\n602 unproven\n"))
        .http("h1", 200, "ok v2\n");
    let mut spec = spec();
    spec.validate.settle = None;
    let started = tokio::time::Instant::now();
    let (result, _) = reload_with(fake, &spec).await;
    result.expect("the reload works");
    let waited = started.elapsed();
    assert!(
        waited >= DEFAULT_SETTLE && waited < DEFAULT_SETTLE + Duration::from_secs(1),
        "{waited:?}"
    );
}

/// A restore that must start the server (no master, twice), seeing
/// `snapshots` after that, with no settle period set and `boot` answering
/// the boot wait. Returns the result, the commands, and how long it took.
async fn start_with(
    mut snapshots: Vec<String>,
    boot: Rule,
) -> (Result<ReloadReport, ReloadFailure>, Vec<String>, Duration) {
    let mut looks = vec![procs(0, 0, &[]), procs(0, 0, &[])];
    looks.append(&mut snapshots);
    let fake = fake()
        .rule("h1", Rule::new("--herd procs", 0).sequence(looks))
        .rule("h1", boot)
        .http("h1", 200, "ok v1\n");
    let mut spec = spec();
    spec.start = Some("start-the-app".into());
    spec.validate.settle = None;
    let connection = fake.connect(&target()).await.expect("fake connects");
    let started = tokio::time::Instant::now();
    let result = restore(&connection, &spec).await;
    (result, fake.commands("h1"), started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_started_server_is_up_once_its_workers_proved_they_booted() {
    let (result, commands, took) = start_with(
        vec![procs(700, 700, &[701, 702])],
        boot_answer("701 booted\n702 booted\n"),
    )
    .await;
    assert_eq!(result.expect("started").master_pid, Some(700));
    assert!(
        commands
            .iter()
            .any(|c| c.contains(boot::MARKER) && c.contains("m=700;")),
        "{commands:?}"
    );
    assert!(
        took < DEFAULT_SETTLE,
        "no settle period once proven: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_started_server_whose_worker_dies_before_it_booted_fails_at_once() {
    // The master exits with its worker, as Gunicorn's does.
    let (result, _, took) = start_with(
        vec![procs(700, 700, &[701, 702]), procs(0, 0, &[])],
        boot_answer("701 dead\n702 waiting\n"),
    )
    .await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Start);
    assert_eq!(
        failure.message,
        "reload.start ran but the master 700 exited after its worker 701 exited before it booted (does the release boot?): the host is DOWN"
    );
    assert!(
        took < Duration::from_secs(5),
        "not the whole timeout: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_started_server_that_replaces_a_dead_worker_is_up_once_the_new_set_booted() {
    let (result, _, _) = start_with(
        vec![
            procs(700, 700, &[701, 702]),
            procs(700, 700, &[701, 702]),
            procs(700, 700, &[702, 703]),
        ],
        Rule::new(boot::MARKER, 0).sequence(vec![
            "701 dead\n702 waiting\n".into(),
            "702 booted\n703 booted\n".into(),
        ]),
    )
    .await;
    let report = result.expect("up once the replacement booted");
    assert_eq!(report.master_pid, Some(700));
}

/// A /proc dump of another server: a pidfile naming `master`, which runs
/// with `comm` and `master_title`, and its workers titled `worker_title`.
fn titled_procs(comm: &str, master_title: &str, worker_title: &str, workers: &[u32]) -> String {
    let mut text = format!("--herd pidfile\n500\n\n--herd procs\n{}", bystanders());
    text.push_str(&stat(500, comm, 'S', 1, 1000, master_title));
    text.push('\n');
    for &w in workers {
        text.push_str(&stat(w, comm, 'S', 500, 1000 + u64::from(w), worker_title));
        text.push('\n');
    }
    text
}

fn puma_procs(workers: &[u32]) -> String {
    titled_procs(
        "puma",
        "puma 5.6.5 (tcp://127.0.0.1:9292) [web]",
        "puma: cluster worker 0: 500 [web]",
        workers,
    )
}

fn server_spec(server: &'static server::AppServer) -> ReloadSpec {
    ReloadSpec {
        server,
        signal: &server.signals[0],
        ..spec()
    }
}

#[tokio::test(start_paused = true)]
async fn usr1_to_a_puma_whose_config_preloads_is_refused_and_nothing_is_signalled() {
    let fake = fake()
        .rule(
            "h1",
            Rule::new("--herd procs", 0).stdout(&puma_procs(&[501, 502])),
        )
        .rule(
            "h1",
            Rule::new(preload::MARKER, 0).stdout(
                "-- config/puma/development.rb\n== config/puma.rb\nworkers 2\npreload_app!\n",
            ),
        );
    let (result, commands) = reload_with(fake, &server_spec(&server::PUMA)).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Preflight);
    assert_eq!(
        failure.message,
        "USR1 to Puma is refused: Puma turns a phased restart of a preloaded app into a hot restart of every worker at once; use USR2 (hot restart) (Puma master 500 preloads the app: its config file config/puma.rb turns preloading on); nothing was signalled"
    );
    assert!(signals(&commands).is_empty(), "{commands:?}");
    // The config is read from the master's own directory.
    assert!(commands.iter().any(|c| c.contains("cd /proc/500/cwd")));
}

#[tokio::test(start_paused = true)]
async fn usr1_to_a_puma_that_cannot_be_read_is_refused_unless_the_playbook_says() {
    let fake = || {
        fake()
            .rule(
                "h1",
                Rule::new("--herd procs", 0).sequence(vec![
                    puma_procs(&[501, 502]),
                    puma_procs(&[502, 601]),
                    puma_procs(&[601, 602]),
                ]),
            )
            .rule(
                "h1",
                Rule::new(preload::MARKER, 0)
                    .stdout("-- config/puma/production.rb\n-- config/puma.rb\n"),
            )
            .http("h1", 200, "ok v2\n")
    };
    let (result, commands) = reload_with(fake(), &server_spec(&server::PUMA)).await;
    let failure = result.unwrap_err();
    assert!(
        failure.message.contains("herd cannot tell whether master 500 does (its title hides the config file it was started with, and no config file is where Puma looks by default, in its working directory (config/puma/production.rb, config/puma.rb)): say `preload: true` or `preload: false` under `reload`"),
        "{}",
        failure.message
    );
    assert!(signals(&commands).is_empty(), "{commands:?}");
    let mut spec = server_spec(&server::PUMA);
    spec.preload = Some(false);
    spec.validate.settle = Some(Duration::ZERO);
    let (result, commands) = reload_with(fake(), &spec).await;
    let report = result.expect("a phased restart the playbook allows");
    assert_eq!(signals(&commands), vec!["USR1 500"]);
    assert_eq!(report.new_workers, vec![601, 602]);
    assert!(!commands.iter().any(|c| c.contains(preload::MARKER)));
}

fn nginx_procs(workers: &[u32]) -> String {
    titled_procs(
        "nginx",
        "nginx: master process /usr/sbin/nginx -c /srv/app/nginx.conf -p /srv/app/",
        "nginx: worker process",
        workers,
    )
}

#[tokio::test(start_paused = true)]
async fn nginx_checks_its_masters_config_before_hup_and_a_rejected_one_signals_nothing() {
    let fake = fake()
        .rule("h1", Rule::new("--herd procs", 0).stdout(&nginx_procs(&[501, 502])))
        .rule(
            "h1",
            Rule::new("exec \"$e\" -t -q -c /srv/app/nginx.conf -p /srv/app/", 1).stderr(
                "nginx: [emerg] unexpected end of file in /srv/app/current/release.conf:2\nnginx: configuration file /srv/app/nginx.conf test failed\n",
            ),
        );
    let (result, commands) = reload_with(fake, &server_spec(&server::NGINX)).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Preflight);
    assert!(
        failure.message.contains("unexpected end of file"),
        "{}",
        failure.message
    );
    assert!(signals(&commands).is_empty(), "{commands:?}");
}

#[tokio::test(start_paused = true)]
async fn an_nginx_that_keeps_its_old_workers_rejected_the_reload() {
    let fake = fake()
        .rule(
            "h1",
            Rule::new("--herd procs", 0).stdout(&nginx_procs(&[501, 502])),
        )
        .rule("h1", Rule::new(preload::PREFLIGHT_MARKER, 0));
    let mut spec = server_spec(&server::NGINX);
    spec.validate.timeout = Duration::from_secs(3);
    let (result, commands) = reload_with(fake, &spec).await;
    let failure = result.unwrap_err();
    assert_eq!(failure.proof, Proof::Workers);
    assert!(
        failure.message.contains("the master kept its old workers [501, 502] and started none: nginx rejected the reload"),
        "{}",
        failure.message
    );
    assert_eq!(signals(&commands), vec!["HUP 500"]);
}

#[tokio::test(start_paused = true)]
async fn an_nginx_that_started_no_worker_fails_long_before_the_timeout() {
    let fake = fake()
        .rule(
            "h1",
            Rule::new("--herd procs", 0).stdout(&nginx_procs(&[501, 502])),
        )
        .rule("h1", Rule::new(preload::PREFLIGHT_MARKER, 0));
    let mut spec = server_spec(&server::NGINX);
    spec.validate.timeout = Duration::from_secs(60);
    let started = tokio::time::Instant::now();
    let (result, _) = reload_with(fake, &spec).await;
    let failure = result.unwrap_err();
    assert!(
        failure.message.starts_with("no new worker within 5s: the master kept its old workers [501, 502] and started none: nginx rejected the reload"),
        "{}",
        failure.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A restore after a broken release may find the master with fewer workers
/// than it runs (the others crash-looping at that moment): the full set of
/// new workers that follows is what a reload wants, not a failure.
#[tokio::test(start_paused = true)]
async fn more_new_workers_than_the_master_showed_before_the_signal_is_a_full_set() {
    let snapshots = vec![procs(500, 500, &[501]), procs(500, 500, &[601, 602])];
    let fake = fake()
        .rule("h1", Rule::new("--herd procs", 0).sequence(snapshots))
        .http("h1", 200, "ok v2\n");
    let (result, commands) = reload_with(fake, &spec()).await;
    let report = result.expect("the reload works");
    assert_eq!(report.new_workers, vec![601, 602]);
    assert_eq!(signals(&commands), vec!["HUP 500"]);
}
