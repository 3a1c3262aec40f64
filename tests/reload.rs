//! `herd reload` and a playbook's reload stage against real Gunicorn masters:
//! what the processes on each host look like afterwards (same master, new
//! workers, which process got a signal), what the test itself is served over
//! HTTP, and that a broken release, a failing preflight, a stale pidfile or
//! two masters on one host never lead to the wrong process being signalled.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread::JoinHandle;
use std::time::Duration;

use common::load::under_load;
use common::master::{assert_untouched, assert_workers_replaced, generation, Generation, WORKERS};
use common::{
    alive, children, healthz, http_get, one_at_a_time, proc_stat, read_pid, switch_release,
    wait_until, Herd, Lab, LabHost,
};

const PIDFILE: &str = "{{ gunicorn_pidfile }}";
const HEALTHZ: &str = "http://{{ ansible_host }}:{{ http_port }}/healthz";

fn stderr_has_line(run: &common::Run, prefix: &str) -> bool {
    run.stderr().lines().any(|line| line.starts_with(prefix))
}

/// `herd exec -l HOST -- COMMAND` (as the lab's login user), which must succeed.
fn exec_on(lab: &Lab, host: &str, command: &str) {
    let run = Herd::new()
        .args(["exec", "-i"])
        .arg(lab.inventory())
        .args(["-l", host, "--", command])
        .run();
    run.assert_code(0);
}

#[test]
fn a_rolling_hup_in_batches_of_2_keeps_every_master_and_replaces_every_worker() {
    let _one = one_at_a_time();
    let lab = Lab::up(6);
    let before: Vec<Generation> = lab.hosts().iter().map(generation).collect();
    for host in lab.hosts() {
        assert_eq!(healthz(host), "ok v1", "{} before the reload", host.name);
        switch_release(&lab, host, "v2");
    }

    let run = lab
        .herd(["reload", "--pidfile", PIDFILE, "--http", HEALTHZ])
        .args([
            "--contains",
            "v2",
            "--batch",
            "2",
            "--validate-timeout",
            "60s",
        ])
        .run();

    run.assert_code(0);
    assert!(
        stderr_has_line(&run, "herd: reload: 6 host(s) in 3 batch(es)"),
        "{run}"
    );
    for (host, before) in lab.hosts().iter().zip(&before) {
        let workers = assert_workers_replaced(host, before, &run);
        assert_eq!(
            healthz(host),
            "ok v2",
            "{} after the reload\n{run}",
            host.name
        );
        // What herd reports is what the host shows.
        let line = format!(
            "{}: reload: ok (master {}, workers {:?} -> {:?}, HUP to {})",
            host.name, before.master.pid, before.workers, workers, before.master.pid
        );
        assert!(stderr_has_line(&run, &line), "no line {line:?}\n{run}");
        assert_eq!(run.summary_result(&host.name), "done", "{run}");
    }
}

/// Builds releases/v3, whose app raises at import, and switches to it; the
/// rollback points `current` back at what it was.
const BROKEN_RELEASE: &str = r#"
name: A release that cannot boot
hosts: web
vars:
  release: v3
  release_dir: "{{ app_dir }}/releases/{{ release }}"
steps:
  - name: Remember the running release
    run: readlink -f {{ app_dir }}/current
    capture: previous
  - name: Build a release whose app raises at import
    run: |
      mkdir -p {{ release_dir }}
      printf '%s\n' {{ release }} > {{ release_dir }}/RELEASE
      printf 'raise RuntimeError("release v3 cannot boot")\n' > {{ release_dir }}/app.py
  - name: Switch the current release
    run: ln -sfn {{ release_dir }} {{ app_dir }}/current.next && mv -T {{ app_dir }}/current.next {{ app_dir }}/current
rollback:
  - name: Point current back at the previous release
    run: ln -sfn {{ previous }} {{ app_dir }}/current.next && mv -T {{ app_dir }}/current.next {{ app_dir }}/current
reload:
  server: gunicorn
  pidfile: "{{ gunicorn_pidfile }}"
  start: "{{ app_start }}"
validate:
  timeout: 60s
  http: { url: "http://{{ ansible_host }}:{{ http_port }}/healthz", status: 200, contains: "{{ release }}" }
"#;

#[test]
fn a_release_that_cannot_boot_is_rolled_back_and_started_and_later_batches_are_not_touched() {
    let _one = one_at_a_time();
    let lab = Lab::up(6);
    let playbook = lab.write("broken.yml", BROKEN_RELEASE);
    let before: Vec<Generation> = lab.hosts().iter().map(generation).collect();

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--batch", "2"])
        .run();

    run.assert_code(1);
    assert!(stderr_has_line(&run, "herd: ROLLOUT ABORTED: "), "{run}");
    for (host, before) in lab.hosts().iter().zip(&before) {
        let name = &host.name;
        let current = fs::read_link(host.app_dir.join("current")).unwrap();
        if matches!(name.as_str(), "host01" | "host02") {
            // HUP made the master load v3; its workers failed to boot and it exited.
            let failed = [
                format!("{name}: reload FAILED: proof `same_master`: "),
                format!("{name}: reload FAILED: proof `workers`: "),
            ];
            assert!(
                failed.iter().any(|l| stderr_has_line(&run, l)),
                "{name}: no failed same_master/workers proof\n{run}"
            );
            assert!(
                stderr_has_line(&run, &format!("{name}: restore after rollback: ok")),
                "{name}: not restored\n{run}"
            );
            assert!(
                !alive(before.master.pid),
                "{name}: the master {} that loaded v3 is still alive\n{run}",
                before.master.pid
            );
            // `reload.start` brought up a new master, serving v1 again.
            let after = generation(host);
            assert_ne!(after.master.pid, before.master.pid, "{name}\n{run}");
            assert_eq!(healthz(host), "ok v1", "{name} after rollback\n{run}");
            assert_eq!(
                fs::canonicalize(host.app_dir.join("current")).unwrap(),
                fs::canonicalize(host.app_dir.join("releases/v1")).unwrap(),
                "{name}: current -> {current:?}\n{run}"
            );
            assert_eq!(run.summary_result(name), "rolled back", "{run}");
        } else {
            assert_untouched(host, before, &run);
            assert_eq!(healthz(host), "ok v1", "{name}\n{run}");
            assert_eq!(current, Path::new("releases/v1"), "{name}: current\n{run}");
            assert!(
                !host.app_dir.join("releases/v3").exists(),
                "{name}: the broken release was built\n{run}"
            );
            assert_eq!(run.summary_result(name), "untouched", "{run}");
        }
    }
}

/// Lines of the Gunicorn log that show a HUP reached the master (checked on
/// Gunicorn 27: `Handling signal: hup`, then `Hang up: Master`).
fn hup_lines(host: &LabHost) -> usize {
    let log = fs::read_to_string(host.app_dir.join("gunicorn.log")).unwrap();
    log.lines()
        .filter(|l| l.contains("Handling signal: hup") || l.contains("Hang up: Master"))
        .count()
}

/// The preflight a real playbook would use: Gunicorn imports the app.
const CHECK_CONFIG: &str =
    "{{ gunicorn_bin }} --check-config --chdir {{ app_dir }}/current app:application";

#[test]
fn a_failing_preflight_signals_nothing() {
    let _one = one_at_a_time();
    let lab = Lab::up(1);
    let host = lab.host("host01");
    let before = generation(host);
    let hups = hup_lines(host);
    // A release whose app raises at import: a HUP would take the master down.
    switch_release(&lab, host, "v3");
    fs::write(
        host.app_dir.join("releases/v3/app.py"),
        "raise RuntimeError('release v3 cannot boot')\n",
    )
    .unwrap();

    let run = lab
        .herd(["reload", "--pidfile", PIDFILE, "--preflight", CHECK_CONFIG])
        .args(["--http", HEALTHZ, "--validate-timeout", "60s"])
        .run();

    run.assert_code(1);
    assert!(
        stderr_has_line(
            &run,
            "host01: reload FAILED: proof `preflight`: preflight failed"
        ),
        "{run}"
    );
    assert_untouched(host, &before, &run);
    assert_eq!(hup_lines(host), hups, "the master logged a HUP\n{run}");
    assert_eq!(healthz(host), "ok v1", "{run}");

    // The same reload with a bootable release does HUP, and the log shows it:
    // the check above can see a signal when there is one.
    switch_release(&lab, host, "v2");
    let run = lab
        .herd(["reload", "--pidfile", PIDFILE, "--preflight", CHECK_CONFIG])
        .args([
            "--http",
            HEALTHZ,
            "--contains",
            "v2",
            "--validate-timeout",
            "60s",
        ])
        .run();
    run.assert_code(0);
    assert_workers_replaced(host, &before, &run);
    assert!(
        hup_lines(host) > hups,
        "the reload that passed its preflight left no HUP in the log\n{run}"
    );
}

/// A process the test started, killed when dropped (also when the test fails).
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_stale_pidfile_naming_an_unrelated_process_is_refused_and_that_process_is_not_signalled() {
    let _one = one_at_a_time();
    let lab = Lab::up(1);
    let host = lab.host("host01");
    let before = generation(host);
    let sleeper = Spawned(Command::new("sleep").arg("300").spawn().unwrap());
    let sleep_pid = sleeper.0.id();
    let stale = host.app_dir.join("stale.pid");
    fs::write(&stale, format!("{sleep_pid}\n")).unwrap();
    common::chown_to(lab.user(), &stale);

    let run = lab
        .herd(["reload"])
        .arg("--pidfile")
        .arg(&stale)
        .args(["--http", HEALTHZ, "--validate-timeout", "60s"])
        .run();

    run.assert_code(1);
    let refused = format!(
        "host01: reload FAILED: proof `master`: the pidfile {} names pid {sleep_pid}, which is not Gunicorn but `sleep 300`: a stale pidfile; that process was not signalled",
        stale.display()
    );
    assert!(stderr_has_line(&run, &refused), "{run}");
    // Still running: a HUP would have ended it (sleep does not handle it).
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        alive(sleep_pid),
        "the sleep {sleep_pid} was signalled\n{run}"
    );
    assert_untouched(host, &before, &run);
}

#[test]
fn a_pidfile_that_is_a_fifo_huge_or_full_of_escapes_is_refused_at_once() {
    let _one = one_at_a_time();
    let lab = Lab::up(1);
    let host = lab.host("host01");
    let before = generation(host);
    let fifo = host.app_dir.join("fifo.pid");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let huge = host.app_dir.join("huge.pid");
    fs::write(
        &huge,
        format!("12\u{1b}]0;T\u{7}{}\n", "9".repeat(2_000_000)),
    )
    .unwrap();
    for path in [&fifo, &huge] {
        common::chown_to(lab.user(), path);
    }
    for (pidfile, content) in [
        (&fifo, "<not a regular file>".to_string()),
        (&huge, format!("12 ]0;T {}", "9".repeat(56))),
    ] {
        let started = std::time::Instant::now();
        let run = lab
            .herd(["reload"])
            .arg("--pidfile")
            .arg(pidfile)
            .args(["--http", HEALTHZ, "--timeout", "60s"])
            .run();

        run.assert_code(1);
        assert!(started.elapsed() < Duration::from_secs(20), "{run}");
        let refused = format!(
            "host01: reload FAILED: proof `master`: the pidfile {} does not hold a pid: `{content}`",
            pidfile.display()
        );
        assert!(stderr_has_line(&run, &refused), "{run}");
        assert!(run.stderr().len() < 4000, "{run}");
        assert!(!run.stderr().contains('\u{1b}'), "{run}");
        assert_untouched(host, &before, &run);
    }
}

/// host01 runs with setproctitle (its worker's title says "worker"), host02
/// without (its worker looks like its master but for its parent).
#[test]
fn a_pidfile_naming_a_worker_is_refused_with_or_without_setproctitle() {
    let _one = one_at_a_time();
    let lab = Lab::up(2);
    for host in lab.hosts() {
        let before = generation(host);
        let worker = before.workers[0];
        let wrong = host.app_dir.join("worker.pid");
        fs::write(&wrong, format!("{worker}\n")).unwrap();
        common::chown_to(lab.user(), &wrong);

        let run = lab
            .herd(["reload"])
            .args(["-l", &host.name, "--pidfile"])
            .arg(&wrong)
            .args(["--http", HEALTHZ])
            .run();

        run.assert_code(1);
        let refused = format!(
            "{}: reload FAILED: proof `master`: pid {worker} is a Gunicorn worker, not the master",
            host.name
        );
        assert!(stderr_has_line(&run, &refused), "{run}");
        assert_untouched(host, &before, &run);
    }
}

/// A second Gunicorn master on a lab host, stopped when dropped.
struct ExtraMaster {
    name: String,
    address: String,
    port: u16,
    pidfile: PathBuf,
}

impl ExtraMaster {
    fn pid(&self) -> u32 {
        read_pid(&self.pidfile).expect("the extra master's pidfile")
    }
}

impl Drop for ExtraMaster {
    fn drop(&mut self) {
        if let Some(pid) = read_pid(&self.pidfile).filter(|pid| alive(*pid)) {
            // SAFETY: a plain kill(2) of the master this test started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            wait_until(Duration::from_secs(10), || !alive(pid));
        }
    }
}

/// `text` with `from` replaced, which must occur in it.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in:\n{text}");
    text.replace(from, to)
}

/// A free TCP port on `address`.
fn free_port(address: &str) -> u16 {
    std::net::TcpListener::bind((address, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a second Gunicorn on `host` (its own name, port, pidfile, log and
/// control socket), as the lab's user through `herd exec`.
fn start_extra_master(lab: &Lab, host: &LabHost) -> ExtraMaster {
    let name = common::unique("extra").replace('-', "_");
    let port = free_port(&host.address);
    let app = &host.app_dir;
    let script = fs::read_to_string(app.join("start-gunicorn.sh")).unwrap();
    // The lab names each master `lab-<tag>-hostNN`; the extra one gets its own name.
    let lab_name = script
        .split("--name ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the start script names the master");
    assert!(lab_name.ends_with(&host.name), "{lab_name}");
    let script = replaced(
        &script,
        &format!("--name {lab_name} "),
        &format!("--name {name} "),
    );
    let script = replaced(
        &script,
        &format!("--bind {}:{} ", host.address, host.http_port),
        &format!("--bind {}:{port} ", host.address),
    );
    let script = replaced(&script, "gunicorn.pid", "extra.pid");
    let script = replaced(&script, "gunicorn.log", "extra.log");
    let script = replaced(&script, "gunicorn.conf.py", "extra.conf.py");
    let conf = app.join("extra.conf.py");
    fs::write(
        &conf,
        format!(
            "control_socket = {:?}\n",
            app.join("extra.ctl").display().to_string()
        ),
    )
    .unwrap();
    let path = app.join("start-extra.sh");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    common::chown_to(lab.user(), &path);
    common::chown_to(lab.user(), &conf);
    let extra = ExtraMaster {
        name,
        address: host.address.clone(),
        port,
        pidfile: app.join("extra.pid"),
    };
    exec_on(lab, &host.name, &path.display().to_string());
    let up = wait_until(Duration::from_secs(20), || {
        read_pid(&extra.pidfile).is_some_and(|pid| children(pid).len() == WORKERS)
            && http_get(&extra.address, extra.port, "/healthz").is_ok_and(|(s, _)| s == 200)
    });
    assert!(up, "the extra master on {} did not come up", host.name);
    extra
}

#[test]
fn with_two_masters_on_a_host_auto_refuses_and_a_name_reloads_only_that_master() {
    let _one = one_at_a_time();
    let lab = Lab::up(2);
    // host01 runs with process titles, host02 without.
    for host in lab.hosts() {
        let extra = start_extra_master(&lab, host);
        let ours = generation(host);
        let theirs = Generation {
            master: proc_stat(extra.pid()).unwrap(),
            workers: children(extra.pid()),
        };

        let auto = lab
            .herd(["reload", "-l", &host.name, "--http", HEALTHZ])
            .args(["--validate-timeout", "60s"])
            .run();

        auto.assert_code(1);
        let refused = format!("{}: reload FAILED: proof `master`: ", host.name);
        assert!(stderr_has_line(&auto, &refused), "{auto}");
        assert!(
            auto.stderr().contains("Gunicorn masters run on this host"),
            "{auto}"
        );
        // Every lab host shares this machine's /proc, so auto sees the
        // masters of every lab running now; herd lists the first few by pid
        // and counts the rest (`, and N more`).
        let truncated = auto
            .stderr()
            .lines()
            .any(|l| l.starts_with(&refused) && l.contains(", and ") && l.contains(" more"));
        for pid in [ours.master.pid, theirs.master.pid] {
            assert!(
                truncated || auto.stderr().contains(&format!("pid {pid} `")),
                "master {pid} is not listed\n{auto}"
            );
        }
        assert_untouched(host, &ours, &auto);
        assert_untouched(host, &theirs, &auto);

        let named = lab
            .herd(["reload", "-l", &host.name, "--name", &extra.name])
            .args(["--validate-timeout", "60s"])
            .run();

        named.assert_code(0);
        let workers = children(theirs.master.pid);
        assert_eq!(workers.len(), WORKERS, "{named}");
        assert!(
            theirs.workers.iter().all(|w| !alive(*w)),
            "old workers of the named master {} still alive\n{named}",
            theirs.master.pid
        );
        assert_eq!(
            proc_stat(theirs.master.pid).map(|p| p.start_time),
            Some(theirs.master.start_time),
            "{named}"
        );
        let line = format!(
            "{}: reload: ok (master {}, workers",
            host.name, theirs.master.pid
        );
        assert!(stderr_has_line(&named, &line), "{named}");
        assert_untouched(host, &ours, &named);
        drop(extra);
    }
}

#[test]
fn a_rolling_reload_under_load_fails_no_request() {
    let _one = one_at_a_time();
    let lab = Lab::up(6);
    let before: Vec<Generation> = lab.hosts().iter().map(generation).collect();
    for host in lab.hosts() {
        switch_release(&lab, host, "v2");
    }
    let herd = lab
        .herd(["reload", "--pidfile", PIDFILE, "--http", HEALTHZ])
        .args([
            "--contains",
            "v2",
            "--batch",
            "1",
            "--validate-timeout",
            "60s",
        ]);
    let run = under_load(&lab, herd);
    for (host, before) in lab.hosts().iter().zip(&before) {
        assert_workers_replaced(host, before, &run);
        assert_eq!(healthz(host), "ok v2", "{}\n{run}", host.name);
    }
}

/// The lab login user's uid and gid, to run a process as that user.
fn lab_ids(lab: &Lab) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, lab.user()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// A Python process, run as the lab user (so herd could signal it), whose
/// command line mentions Gunicorn but which is not Gunicorn:
/// `python3 DIR/decoy.py /var/log/gunicorn`. It records any HUP it gets.
struct Decoy {
    child: Spawned,
    hup_marker: PathBuf,
}

impl Decoy {
    fn start(lab: &Lab, host: &LabHost) -> Decoy {
        let script = host.app_dir.join("decoy.py");
        let hup_marker = host.app_dir.join("decoy-got-hup");
        fs::write(
            &script,
            format!(
                "import signal, time\n\
                 signal.signal(signal.SIGHUP, lambda *_: open({:?}, 'a').write('hup\\n'))\n\
                 time.sleep(300)\n",
                hup_marker.display().to_string()
            ),
        )
        .unwrap();
        common::chown_to(lab.user(), &script);
        let (uid, gid) = lab_ids(lab);
        let child = std::os::unix::process::CommandExt::gid(
            std::os::unix::process::CommandExt::uid(
                Command::new("python3")
                    .arg(&script)
                    .arg("/var/log/gunicorn")
                    .current_dir(&host.app_dir),
                uid,
            ),
            gid,
        )
        .spawn()
        .unwrap();
        let decoy = Decoy {
            child: Spawned(child),
            hup_marker,
        };
        let pid = decoy.pid();
        let cmdline = format!("python3 {} /var/log/gunicorn", script.display());
        // Ready once exec'd and past installing its handler (it reads the file first).
        assert!(
            wait_until(Duration::from_secs(10), || {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == cmdline)
            }),
            "the decoy did not start"
        );
        decoy
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// True if a HUP reached it: its handler writes the marker at once.
    fn got_hup(&self) -> bool {
        wait_until(Duration::from_millis(500), || self.hup_marker.exists())
    }
}

#[test]
fn a_process_that_only_mentions_gunicorn_in_its_arguments_is_refused_and_never_signalled() {
    let _one = one_at_a_time();
    let lab = Lab::up(1);
    let host = lab.host("host01");
    let before = generation(host);
    let mut decoy = Decoy::start(&lab, host);
    let pid = decoy.pid();
    let pidfile = host.app_dir.join("decoy.pid");
    fs::write(&pidfile, format!("{pid}\n")).unwrap();
    common::chown_to(lab.user(), &pidfile);

    let run = lab
        .herd(["reload"])
        .arg("--pidfile")
        .arg(&pidfile)
        .args(["--http", HEALTHZ, "--validate-timeout", "20s"])
        .run();

    run.assert_code(1);
    let refused = format!(
        "host01: reload FAILED: proof `master`: the pidfile {} names pid {pid}, which is not Gunicorn but `python3 {} /var/log/gunicorn`: a stale pidfile; that process was not signalled",
        pidfile.display(),
        host.app_dir.join("decoy.py").display()
    );
    assert!(stderr_has_line(&run, &refused), "{run}");
    assert!(!decoy.got_hup(), "the decoy {pid} got a HUP\n{run}");
    assert!(
        decoy.child.0.try_wait().unwrap().is_none(),
        "the decoy {pid} exited\n{run}"
    );
    assert_untouched(host, &before, &run);
}

/// Deploys v2 (built from v1) and reloads; the rollback points `current`
/// back at v1. `PREFLIGHT` is replaced by the test.
const DEPLOY_V2: &str = r#"
name: Deploy v2
hosts: web
steps:
  - name: Build and switch to v2
    run: |
      mkdir -p {{ app_dir }}/releases/v2
      cp {{ app_dir }}/releases/v1/app.py {{ app_dir }}/releases/v2/
      printf 'v2\n' > {{ app_dir }}/releases/v2/RELEASE
      ln -sfn releases/v2 {{ app_dir }}/current.next && mv -T {{ app_dir }}/current.next {{ app_dir }}/current
rollback:
  - name: Point current back at v1
    run: ln -sfn releases/v1 {{ app_dir }}/current.next && mv -T {{ app_dir }}/current.next {{ app_dir }}/current
reload:
  pidfile: "{{ gunicorn_pidfile }}"
  start: "{{ app_start }}"
  preflight: PREFLIGHT
validate:
  timeout: 60s
  http: { url: "http://{{ ansible_host }}:{{ http_port }}/healthz", status: 200, contains: v2 }
"#;

/// Where `current` points on `host`, as written.
fn current(host: &LabHost) -> PathBuf {
    fs::read_link(host.app_dir.join("current")).unwrap()
}

#[test]
fn a_master_that_dies_before_the_signal_is_not_signalled_and_reload_start_brings_up_the_new_release(
) {
    let _one = one_at_a_time();
    let lab = Lab::up(1);
    let host = lab.host("host01");
    let before = generation(host);
    // The master ends (TERM, and gone) after herd proved it and before its HUP.
    let preflight = "'p=$(cat {{ gunicorn_pidfile }}); kill -TERM $p; while kill -0 $p 2>/dev/null && ! grep -q \"^State:.*Z\" /proc/$p/status; do sleep 0.05; done'";
    let playbook = lab.write("deploy.yml", &DEPLOY_V2.replace("PREFLIGHT", preflight));

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(0);
    let after = generation(host);
    assert_ne!(after.master.pid, before.master.pid, "{run}");
    let line = format!(
        "host01: reload: ok (new master {}, workers {:?} -> {:?}, HUP to {} refused (it had exited), started with reload.start)",
        after.master.pid, before.workers, after.workers, before.master.pid
    );
    assert!(stderr_has_line(&run, &line), "no line {line:?}\n{run}");
    assert_eq!(run.summary_result("host01"), "done", "{run}");
    assert_eq!(healthz(host), "ok v2", "{run}");
    assert_eq!(current(host), Path::new("releases/v2"), "{run}");
    assert!(lab.hosts_with_lock_file().is_empty(), "{run}");
}

/// Cuts herd's SSH connection to `host` as soon as its master logs a HUP:
/// kills the sessions of the host's sshd (and first the sshd itself, so no
/// new connection can be made, when `refuse_new` is set).
fn cut_ssh_after_hup(host: &LabHost, refuse_new: bool) -> JoinHandle<bool> {
    let host = host.clone();
    let hups = hup_lines(&host);
    std::thread::spawn(move || {
        if !wait_until(Duration::from_secs(60), || hup_lines(&host) > hups) {
            return false;
        }
        // The master logs the HUP before herd's `kill` has reported back:
        // give the report a second to arrive (herd then watches for 5 s),
        // so the cut lands after the signal, not while it is being sent.
        std::thread::sleep(Duration::from_secs(1));
        let sshd = host.sshd_pid.expect("the lab knows its sshd");
        // Each session is a privileged monitor, its network-facing child and
        // the shell under that: all of them go.
        let mut sessions = children(sshd);
        let mut next = 0;
        while next < sessions.len() {
            sessions.extend(children(sessions[next]));
            next += 1;
        }
        if refuse_new {
            host.kill_sshd();
        }
        for pid in &sessions {
            // SAFETY: a plain kill(2) of an sshd session of this test's lab.
            unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
        }
        !sessions.is_empty()
    })
}

const NO_PREFLIGHT: &str = "'true'";

/// Deploys v2 to a one-host lab whose SSH sessions are cut as soon as its
/// master logs the HUP (see `cut_ssh_after_hup` for `refuse_new`); checks the
/// cut happened and that herd's `contact` proof failed. Returns the lab, the
/// generation before the run, and the run.
fn deploy_v2_losing_contact_after_the_hup(refuse_new: bool) -> (Lab, Generation, common::Run) {
    let lab = Lab::up(1);
    let host = lab.host("host01");
    let before = generation(host);
    // A settle period keeps herd watching the workers for 5 s after the HUP
    // (a proven reload is over in a fraction of a second), so the cut
    // always lands while herd looks.
    let playbook = lab.write(
        "deploy.yml",
        &DEPLOY_V2
            .replace("PREFLIGHT", NO_PREFLIGHT)
            .replace("  timeout: 60s\n", "  timeout: 60s\n  settle: 5s\n"),
    );
    let cut = cut_ssh_after_hup(host, refuse_new);

    let run = lab.herd(["run"]).arg(&playbook).run();

    assert!(cut.join().unwrap(), "no HUP seen, or no session cut\n{run}");
    assert!(
        stderr_has_line(
            &run,
            "host01: reload FAILED: proof `contact`: contact lost after the signal"
        ),
        "{run}"
    );
    (lab, before, run)
}

#[test]
fn contact_lost_after_the_hup_and_regained_reports_what_the_host_serves() {
    let _one = one_at_a_time();
    let (lab, before, run) = deploy_v2_losing_contact_after_the_hup(false);
    let host = lab.host("host01");

    run.assert_code(0);
    assert!(
        stderr_has_line(
            &run,
            "host01: reload: ok, contact was lost after the signal; on a new connection, the new release serves"
        ),
        "{run}"
    );
    assert_workers_replaced(host, &before, &run);
    assert_eq!(run.summary_result("host01"), "done", "{run}");
    assert_eq!(healthz(host), "ok v2", "{run}");
    assert_eq!(current(host), Path::new("releases/v2"), "{run}");
    // The lock went back over the new connection.
    assert!(lab.hosts_with_lock_file().is_empty(), "{run}");
    assert!(!run.stderr().contains("is still there"), "{run}");
}

#[test]
fn contact_lost_after_the_hup_for_good_is_reported_as_unknown_not_as_rolled_back() {
    let _one = one_at_a_time();
    let (lab, before, run) = deploy_v2_losing_contact_after_the_hup(true);
    let host = lab.host("host01");

    run.assert_code(1);
    assert!(
        stderr_has_line(
            &run,
            "host01: CONTACT LOST after the signal: what it serves is unknown, check this host by hand"
        ),
        "{run}"
    );
    assert_eq!(run.summary_result("host01"), "contact lost", "{run}");
    assert!(!run.stderr().contains("rolled back"), "{run}");
    // The host took the new release: a report of "rolled back" would have
    // lied. (herd left before the old workers were all gone: wait for them.)
    wait_until(Duration::from_secs(20), || {
        before.workers.iter().all(|old| !alive(*old))
            && children(before.master.pid).len() == WORKERS
    });
    assert_workers_replaced(host, &before, &run);
    assert_eq!(healthz(host), "ok v2", "{run}");
    assert_eq!(current(host), Path::new("releases/v2"), "{run}");
    // The lock could not be given back: herd says so, and where.
    assert_eq!(lab.hosts_with_lock_file(), ["host01"], "{run}");
    let lock = lab.lock_file("host01");
    assert!(
        run.stderr().lines().any(|line| line.starts_with(&format!(
            "host01: the deploy lock {} is still there (",
            lock.display()
        )) && line
            .ends_with("): `herd unlock -l host01` removes it")),
        "{run}"
    );
}

/// How many times a Gunicorn master started on `host`, as its log says.
fn starts(host: &LabHost) -> usize {
    let log = fs::read_to_string(host.app_dir.join("gunicorn.log")).unwrap();
    log.lines()
        .filter(|l| l.contains("Starting gunicorn"))
        .count()
}

const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";

/// Why this test process, running as root, cannot choose the pid of its
/// next child, if it cannot: that takes a writable `ns_last_pid`.
fn cannot_choose_pids() -> Option<String> {
    // Writing back the value read moves nothing: it only proves the write works.
    let last = match fs::read_to_string(NS_LAST_PID) {
        Ok(text) => text,
        Err(e) => return Some(format!("cannot read {NS_LAST_PID}: {e}")),
    };
    fs::write(NS_LAST_PID, last.trim())
        .err()
        .map(|e| format!("cannot write {NS_LAST_PID}: {e}"))
}

/// A Python process, run as the lab user (so herd could signal it), started
/// on the pid of a process that exited. It records any HUP it gets and
/// otherwise sleeps; it is killed when dropped, also when the test fails.
struct Squatter {
    child: Spawned,
    hup_marker: PathBuf,
}

impl Squatter {
    /// Starts the squatter on `pid`, which must be free: sets the kernel's
    /// last pid to `pid - 1` and forks at once, again while another process
    /// on the machine took `pid` first. Fails the test if it never gets it.
    fn start_on(lab: &Lab, host: &LabHost, pid: u32) -> Squatter {
        const TRIES: usize = 50;
        let script = host.app_dir.join("squatter.py");
        let hup_marker = host.app_dir.join("squatter-got-hup");
        let ready = host.app_dir.join("squatter-ready");
        fs::write(
            &script,
            format!(
                "import signal, time\n\
                 signal.signal(signal.SIGHUP, lambda *_: open({:?}, 'a').write('hup\\n'))\n\
                 open({:?}, 'w').close()\n\
                 time.sleep(300)\n",
                hup_marker.display().to_string(),
                ready.display().to_string()
            ),
        )
        .unwrap();
        common::chown_to(lab.user(), &script);
        let (uid, gid) = lab_ids(lab);
        let mut taken_by = Vec::new();
        for _ in 0..TRIES {
            let _ = fs::remove_file(&ready);
            // A process of another test may have taken it on the last
            // try; such a one is short-lived.
            if !wait_until(Duration::from_secs(10), || proc_stat(pid).is_none()) {
                panic!("pid {pid} is not free: {:?}", proc_stat(pid));
            }
            fs::write(NS_LAST_PID, (pid - 1).to_string()).unwrap();
            let child = std::os::unix::process::CommandExt::gid(
                std::os::unix::process::CommandExt::uid(
                    Command::new("python3")
                        .arg(&script)
                        .current_dir(&host.app_dir),
                    uid,
                ),
                gid,
            )
            .spawn()
            .unwrap();
            let squatter = Squatter {
                child: Spawned(child),
                hup_marker: hup_marker.clone(),
            };
            if squatter.pid() != pid {
                // Another process forked in between; this one goes (dropped).
                taken_by.push(squatter.pid());
                continue;
            }
            assert!(
                wait_until(Duration::from_secs(20), || ready.exists()),
                "the squatter on pid {pid} did not start"
            );
            return squatter;
        }
        panic!(
            "could not start a process on pid {pid} in {TRIES} tries (got {taken_by:?}): \
             the pid reuse this test needs cannot be arranged on this machine"
        );
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// True if a HUP reached it: its handler writes the marker at once.
    fn got_hup(&self) -> bool {
        wait_until(Duration::from_millis(500), || self.hup_marker.exists())
    }
}

/// The real hostile case: the proven master dies during the preflight and,
/// before the HUP is due, its pid is given to another process of the same
/// user. That process is not signalled.
#[test]
fn a_master_whose_pid_is_reused_during_the_preflight_is_not_signalled_nor_is_the_new_process() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: this test reuses a pid on purpose, which takes root");
        return;
    }
    // As root (as in CI) the test must run: a pid it cannot choose is a failure.
    if let Some(why) = cannot_choose_pids() {
        panic!("running as root, yet this test cannot choose a pid: {why}");
    }
    let _one = one_at_a_time();
    let lab = Lab::up(1);
    let host = lab.host("host01");
    let before = generation(host);
    let master = before.master.pid;
    let starts_before = starts(host);
    assert!(starts_before > 0, "the Gunicorn log shows no start");
    let ready = host.app_dir.join("preflight-ready");
    let go = host.app_dir.join("preflight-go");
    // The preflight says it runs, then waits (a minute at most) for the go;
    // it forks a `sleep` only twice a second, so it rarely takes the pid.
    let preflight = "'touch {{ app_dir }}/preflight-ready; i=0; while [ ! -e {{ app_dir }}/preflight-go ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i+1)); done'";
    let playbook = lab.write("deploy.yml", &DEPLOY_V2.replace("PREFLIGHT", preflight));

    let mut herd = lab.herd(["run"]).arg(&playbook).spawn();
    assert!(
        wait_until(Duration::from_secs(60), || ready.exists()
            || !herd.is_running()),
        "the preflight did not start"
    );
    assert!(
        herd.is_running(),
        "herd ended before its preflight\n{}",
        herd.wait()
    );
    // The master herd proved dies. Gunicorn daemonized, so it is the child
    // of init (or of a subreaper), which reaps it and frees its pid.
    let parent = before.master.ppid;
    // SAFETY: a plain kill(2) of the lab's master, which this test owns.
    assert_eq!(
        unsafe { libc::kill(master as libc::pid_t, libc::SIGKILL) },
        0
    );
    assert!(
        wait_until(Duration::from_secs(60), || proc_stat(master).is_none()),
        "the killed master {master} was not reaped by its parent {parent}: {:?}",
        proc_stat(master)
    );
    let squatter = Squatter::start_on(&lab, host, master);
    fs::write(&go, "").unwrap();

    let run = herd.wait();

    assert!(
        !squatter.got_hup(),
        "the process on pid {master} got a HUP\n{run}"
    );
    let mut child = squatter.child;
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the process on pid {master} exited\n{run}"
    );
    // Refused, said so, and nothing else was started: the pidfile names a
    // live process, so `reload.start` would be refused too (and is not run).
    run.assert_code(1);
    let pidfile = &host.pidfile;
    let script = host.app_dir.join("squatter.py");
    let refused = format!(
        "host01: reload FAILED: proof `signal`: the master {master} exited before HUP, which was not sent, \
         and no master can be started: the pidfile {} names pid {master}, which is not Gunicorn but `python3 {}`: \
         a stale pidfile; that process was not signalled \
         (master {master}, workers {:?} -> [], HUP to {master} refused (the pid belonged to another process))",
        pidfile.display(),
        script.display(),
        before.workers
    );
    assert!(
        stderr_has_line(&run, &refused),
        "no line {refused:?}\n{run}"
    );
    assert!(!run.stderr().contains("started with reload.start"), "{run}");
    // The rollback ran; the server cannot be restored, and herd says so.
    assert!(
        stderr_has_line(&run, "host01: rollback [1/1] Point current back at v1: ok"),
        "{run}"
    );
    assert_eq!(current(host), Path::new("releases/v1"), "{run}");
    let restore = format!(
        "host01: restore after rollback FAILED: proof `master`: the pidfile {} names pid {master}, which is not Gunicorn but `python3 {}`: a stale pidfile; that process was not signalled",
        pidfile.display(),
        script.display()
    );
    assert!(
        stderr_has_line(&run, &restore),
        "no line {restore:?}\n{run}"
    );
    assert!(
        stderr_has_line(&run, "host01: ROLLBACK FAILED: check this host by hand"),
        "{run}"
    );
    assert!(
        run.summary_row("host01").contains("; rollback FAILED"),
        "{run}"
    );
    assert_eq!(run.summary_result("host01"), "rollback failed", "{run}");
    // No Gunicorn was started (the orphaned old workers may still answer
    // for a moment; no master will replace them), and the pidfile still
    // names the process on the reused pid.
    assert_eq!(starts(host), starts_before, "a Gunicorn was started\n{run}");
    assert_eq!(read_pid(pidfile), Some(master), "{run}");
    assert!(lab.hosts_with_lock_file().is_empty(), "{run}");
}

/// Puts `prelude` before the app of `release` (the release `current` names).
fn app_starting_with(host: &LabHost, release: &str, prelude: &str) {
    let app = host.app_dir.join("releases").join(release).join("app.py");
    let code = fs::read_to_string(&app).unwrap();
    fs::write(&app, format!("{prelude}{code}")).unwrap();
}

#[test]
fn a_reload_is_done_only_once_slow_workers_booted_and_fails_fast_when_they_cannot() {
    let _one = one_at_a_time();
    let lab = Lab::up(1);
    let host = lab.host("host01");
    let before = generation(host);
    // Each new worker takes 3 s to import the app: longer than the settle
    // period a reload used to sleep instead of proving the boot.
    switch_release(&lab, host, "v2");
    app_starting_with(host, "v2", "import time\ntime.sleep(3)\n");

    let started = std::time::Instant::now();
    let run = lab
        .herd(["reload", "--pidfile", PIDFILE, "--validate-timeout", "60s"])
        .run();
    let took = started.elapsed();
    run.assert_code(0);
    // Served at once: the workers were in their loops when herd said done
    // (a worker still importing would keep the request 3 s).
    let asked = std::time::Instant::now();
    let answer = healthz(host);
    let answered_in = asked.elapsed();
    assert_eq!(answer, "ok v2", "{run}");
    assert!(
        answered_in < Duration::from_secs(1),
        "the first request after the reload took {answered_in:?}\n{run}"
    );
    assert!(took >= Duration::from_secs(3), "done after {took:?}\n{run}");
    assert_workers_replaced(host, &before, &run);

    // A release whose workers crash while booting: the reload fails as soon
    // as they die, far within its 60 s limit.
    switch_release(&lab, host, "v3");
    app_starting_with(
        host,
        "v3",
        "import time\ntime.sleep(1)\nraise RuntimeError('release v3 cannot boot')\n",
    );
    let started = std::time::Instant::now();
    let run = lab
        .herd(["reload", "--pidfile", PIDFILE, "--validate-timeout", "60s"])
        .run();
    let took = started.elapsed();
    run.assert_code(1);
    assert!(
        stderr_has_line(
            &run,
            &format!(
                "host01: reload FAILED: proof `same_master`: the master {} exited after HUP",
                before.master.pid
            )
        ),
        "{run}"
    );
    assert!(
        took < Duration::from_secs(15),
        "failed after {took:?}\n{run}"
    );
    assert!(!alive(before.master.pid), "{run}");
}

/// The server is a template: each host names its own (here Gunicorn on
/// every host, given with `-e`).
const TEMPLATED_SERVER: &str = r#"
name: Each host's own server
hosts: web
reload:
  server: "{{ app_server }}"
  pidfile: "{{ gunicorn_pidfile }}"
validate:
  timeout: 60s
  http: { url: "http://{{ ansible_host }}:{{ http_port }}/healthz", status: 200, contains: v2 }
"#;

#[test]
fn a_templated_server_reloads_each_host_as_the_server_it_names() {
    let _one = one_at_a_time();
    let lab = Lab::up(2);
    let playbook = lab.write("templated.yml", TEMPLATED_SERVER);
    let before: Vec<Generation> = lab.hosts().iter().map(generation).collect();
    for host in lab.hosts() {
        switch_release(&lab, host, "v2");
    }

    let plan = lab
        .herd(["plan"])
        .arg(&playbook)
        .args(["-e", "app_server=gunicorn"])
        .run();
    plan.assert_code(0);
    let reload_lines: Vec<&str> = plan
        .stdout()
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("reload: "))
        .collect();
    assert_eq!(reload_lines.len(), 2, "{plan}");
    for line in reload_lines {
        assert!(
            line.starts_with("reload: kill -HUP to the Gunicorn master"),
            "{plan}"
        );
    }

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-e", "app_server=gunicorn"])
        .run();

    run.assert_code(0);
    for (host, before) in lab.hosts().iter().zip(&before) {
        assert_workers_replaced(host, before, &run);
        assert_eq!(
            healthz(host),
            "ok v2",
            "{} after the reload\n{run}",
            host.name
        );
        assert_eq!(run.summary_result(&host.name), "done", "{run}");
    }
}
