//! A steady HTTP load on every lab host while herd rolls a reload across
//! them: what zero downtime means, measured.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{http_get, wait_until, Herd, Lab, LabHost, Run};

/// HTTP GETs to every host's /healthz from a few threads, until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    /// Per host, every distinct body it answered.
    seen: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
    threads: Vec<JoinHandle<()>>,
}

const LOAD_THREADS: usize = 4;
const LOAD_MAX_REQUESTS: usize = 20_000;
const LOAD_MAX_TIME: Duration = Duration::from_secs(60);
/// The load threads' own bound, a backstop behind the test's `LOAD_MAX_TIME`.
const LOAD_BACKSTOP: Duration = Duration::from_secs(80);
/// Each thread sends at most one request per `LOAD_PACE`, so the request cap
/// is not reached before the backstop: the load lasts the whole rollout.
const LOAD_PACE: Duration = Duration::from_millis(
    (LOAD_THREADS as u64 * LOAD_BACKSTOP.as_secs() * 1000) / LOAD_MAX_REQUESTS as u64,
);

impl Load {
    pub fn start(hosts: &[LabHost]) -> Load {
        let mut load = Load {
            stop: Arc::new(AtomicBool::new(false)),
            requests: Arc::new(AtomicUsize::new(0)),
            failures: Arc::new(Mutex::new(Vec::new())),
            seen: Arc::new(Mutex::new(BTreeMap::new())),
            threads: Vec::new(),
        };
        let started = Instant::now();
        load.threads = (0..LOAD_THREADS)
            .map(|t| {
                let hosts = hosts.to_vec();
                let pace = LOAD_PACE;
                let (stop, requests) = (load.stop.clone(), load.requests.clone());
                let (failures, seen) = (load.failures.clone(), load.seen.clone());
                std::thread::spawn(move || {
                    for i in t.. {
                        if stop.load(Ordering::Relaxed)
                            || started.elapsed() > LOAD_BACKSTOP
                            || requests.fetch_add(1, Ordering::Relaxed) >= LOAD_MAX_REQUESTS
                        {
                            break;
                        }
                        let sent = Instant::now();
                        let host = &hosts[i % hosts.len()];
                        match http_get(&host.address, host.http_port, "/healthz") {
                            Ok((200, body)) if body.starts_with("ok v") => {
                                let mut seen = seen.lock().unwrap();
                                seen.entry(host.name.clone())
                                    .or_default()
                                    .insert(body.trim().to_string());
                            }
                            Ok((status, body)) => failures
                                .lock()
                                .unwrap()
                                .push(format!("{}: HTTP {status} {body:?}", host.name)),
                            Err(e) => failures.lock().unwrap().push(format!("{}: {e}", host.name)),
                        }
                        std::thread::sleep(pace.saturating_sub(sent.elapsed()));
                    }
                })
            })
            .collect();
        load
    }

    pub fn seen(&self, host: &str) -> BTreeSet<String> {
        self.seen
            .lock()
            .unwrap()
            .get(host)
            .cloned()
            .unwrap_or_default()
    }

    /// Stops the threads; returns the requests sent and the failures.
    pub fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread.join().unwrap();
        }
        let sent = self.requests.load(Ordering::Relaxed).min(LOAD_MAX_REQUESTS);
        (sent, self.failures.lock().unwrap().clone())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs `herd` (a rolling reload from v1 to v2: every host serves `ok v1`
/// when it starts) while every host of `lab` is under load, and asserts no
/// request failed, enough were sent, and every host answered both releases.
/// Returns herd's run, which must have exited 0.
pub fn under_load(lab: &Lab, herd: Herd) -> Run {
    let load = Load::start(lab.hosts());
    assert!(
        wait_until(Duration::from_secs(20), || lab
            .hosts()
            .iter()
            .all(|h| load.seen(&h.name).contains("ok v1"))),
        "not every host answered `ok v1` under load"
    );
    let started = Instant::now();
    let mut herd = herd.spawn();
    while herd.is_running() && started.elapsed() < LOAD_MAX_TIME {
        std::thread::sleep(Duration::from_millis(50));
    }
    // False when the time bound, not herd's exit, ended the load.
    let load_lasted = !herd.is_running();
    let seen: Vec<(String, BTreeSet<String>)> = lab
        .hosts()
        .iter()
        .map(|h| (h.name.clone(), load.seen(&h.name)))
        .collect();
    let (requests, failures) = load.finish();
    let lasted = started.elapsed().as_secs_f64();
    eprintln!(
        "load during the rolling reload: {requests} requests, {} failed, over {:.1}s; answers per host: {seen:?}",
        failures.len(),
        lasted
    );
    // Answers from both releases, on every host when the load lasted the
    // whole rollout (on an overloaded machine herd may outlast the load's
    // time bound; the hosts reloaded after it are then not asked).
    let all: BTreeSet<&String> = seen.iter().flat_map(|(_, b)| b).collect();
    assert!(
        all.contains(&"ok v1".to_string()) && all.contains(&"ok v2".to_string()),
        "answers seen: {all:?}"
    );
    for (host, bodies) in &seen {
        assert!(bodies.contains("ok v1"), "{host} never answered v1");
        assert!(
            !load_lasted || bodies.contains("ok v2"),
            "{host} never answered v2 though the load ran until herd exited"
        );
    }
    let run = herd.wait();
    run.assert_code(0);
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed, the first: {:?}\n{run}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    // A steady rate, however short the rollout: with every host answering
    // both releases (above), traffic spanned each host's reload. A count per
    // host would fail a rollout that got faster (a host reloads in ~0.2s).
    let hosts = lab.hosts().len();
    assert!(
        requests as f64 >= 50.0 * lasted && requests >= 10 * hosts,
        "only {requests} requests were sent in {lasted:.1}s to {hosts} hosts\n{run}"
    );
    run
}
