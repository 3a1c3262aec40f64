//! Connecting up front: a host whose sshd is gone or that never answers is
//! reported unreachable within `--connect-timeout`, with the reason, and with
//! `max_fail: 0` the rollout does not start, so no host is changed.

mod common;

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{dir_state, Lab, Run};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// What a busy 2-core machine may add to herd's own wall time (start-up,
/// handshakes with the healthy hosts, the summary).
const MARGIN: Duration = Duration::from_millis(2500);

const MARKER_PLAYBOOK: &str = "\
name: Leave a marker
hosts: web
rolling:
  max_fail: 0
steps:
  - name: Touch the marker
    run: touch {{ app_dir }}/marker
";

/// A TCP port that accepts connections and never says a word (not even the
/// SSH banner), like a host behind a firewall that swallows packets after the
/// handshake. Stops accepting when dropped.
struct Blackhole {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Blackhole {
    fn start() -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            std::thread::spawn(move || {
                // Held open, unread, until the test ends.
                let mut held: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            held.push(stream);
                            accepted.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Blackhole {
            port,
            accepted,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn snapshot(lab: &Lab) -> BTreeMap<String, BTreeMap<String, String>> {
    lab.hosts()
        .iter()
        .map(|h| (h.name.clone(), dir_state(&h.app_dir)))
        .collect()
}

/// Runs the marker playbook with `--connect-timeout 2s`; returns the run and
/// herd's wall time.
fn run_timed(lab: &Lab, inventory: &Path) -> (Run, Duration) {
    let playbook = lab.write("marker.yml", MARKER_PLAYBOOK);
    let started = Instant::now();
    let run = common::Herd::new()
        .arg("run")
        .arg(&playbook)
        .arg("-i")
        .arg(inventory)
        .args(["--connect-timeout", "2s"])
        .run();
    (run, started.elapsed())
}

/// The checks common to both ways of being unreachable: exit 1, `dead` is
/// the one unreachable host and its reason contains `reason`, the rollout did
/// not start, and no host's disk changed.
fn assert_rollout_did_not_start(
    lab: &Lab,
    run: &Run,
    dead: &str,
    reason: &str,
    before: &BTreeMap<String, BTreeMap<String, String>>,
) {
    run.assert_code(1);
    let unreachable = run.unreachable_lines();
    assert_eq!(unreachable.len(), 1, "{run}");
    assert!(
        unreachable[0].starts_with(&format!("{dead}: UNREACHABLE: ")),
        "{run}"
    );
    assert!(
        unreachable[0].contains(reason),
        "the reason should say {reason:?}: {}\n{run}",
        unreachable[0]
    );
    assert_eq!(run.summary_result(dead), "unreachable", "{run}");
    assert!(run.summary_row(dead).contains(reason), "{run}");
    assert!(run.stderr().contains("the rollout did not start"), "{run}");
    for host in lab.hosts().iter().filter(|h| h.name != dead) {
        assert_eq!(run.summary_result(&host.name), "untouched", "{run}");
    }
    for host in lab.hosts() {
        assert!(
            !host.app_dir.join("marker").exists(),
            "the marker step ran on {}\n{run}",
            host.name
        );
        assert_eq!(
            dir_state(&host.app_dir),
            before[&host.name],
            "{} changed on disk\n{run}",
            host.name
        );
    }
}

#[test]
fn a_stopped_sshd_is_refused_at_once_and_the_rollout_does_not_start() {
    let lab = Lab::up(4);
    lab.host("host03").kill_sshd();
    let before = snapshot(&lab);

    let (run, took) = run_timed(&lab, lab.inventory());

    assert_rollout_did_not_start(&lab, &run, "host03", "refused", &before);
    assert!(
        took < CONNECT_TIMEOUT + MARGIN,
        "herd took {took:?} to find a refused port\n{run}"
    );
}

#[test]
fn a_host_that_never_answers_times_out_after_the_connect_timeout() {
    let lab = Lab::up(4);
    let blackhole = Blackhole::start();
    let host03 = lab.host("host03");
    let inventory = lab.edited_inventory("blackhole.yml", |text| {
        text.replace(
            &format!(
                "ansible_host: {}, ansible_port: {},",
                host03.address, host03.ssh_port
            ),
            &format!("ansible_host: 127.0.0.1, ansible_port: {},", blackhole.port),
        )
    });
    let before = snapshot(&lab);

    let (run, took) = run_timed(&lab, &inventory);

    assert!(
        blackhole.accepted.load(Ordering::SeqCst) >= 1,
        "herd never connected to the blackhole\n{run}"
    );
    assert_rollout_did_not_start(&lab, &run, "host03", "timed out after 2s", &before);
    assert!(
        took >= CONNECT_TIMEOUT - Duration::from_millis(100),
        "herd gave up after {took:?}, before the 2s connect timeout\n{run}"
    );
    assert!(
        took < CONNECT_TIMEOUT + MARGIN,
        "herd took {took:?} with a 2s connect timeout\n{run}"
    );
}
