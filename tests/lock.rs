//! The deploy lock: a second `herd run` on a host another run holds exits 3
//! naming the holder and touches nothing, or with `--lock-wait` waits its
//! turn; a stale lock of this controller is broken, another controller's is
//! respected; no lock file outlives a run; `herd unlock` clears a lock a dead
//! controller left. Two inventory names for one machine and account share
//! one lock within a run; a lock file that cannot be created is an error
//! saying why, not a lock "held".

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{wait_until, Herd, Lab};

/// Holds the lock for a while: a marker, then three seconds of sleep.
const SLOW: &str = "\
name: Slow first
hosts: web
steps:
  - name: Mark
    run: echo first >> {{ app_dir }}/order
  - name: Take a while
    run: sleep 3
";

/// The second run's only step: append to the same file.
const QUICK: &str = "\
name: Quick second
hosts: web
steps:
  - name: Mark
    run: echo second >> {{ app_dir }}/order
";

/// The account the tests (and the herd they start) run as.
fn os_account() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; it is
    // read at once, in a test that calls it from one thread at a time.
    unsafe {
        let entry = libc::getpwuid(libc::geteuid());
        assert!(!entry.is_null(), "this account has no password entry");
        std::ffi::CStr::from_ptr((*entry).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// What `herd` writes as the controller: this machine's hostname.
fn controller() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// The lines of `host`'s order file (empty when it does not exist).
fn order(lab: &Lab, host: &str) -> Vec<String> {
    fs::read_to_string(lab.app_dir(host).join("order"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The value of `field=` in a lock file's text.
fn field(lock: &str, name: &str) -> String {
    lock.split_whitespace()
        .find_map(|part| part.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in lock file {lock:?}"))
        .to_string()
}

/// Starts SLOW on host01,host02 with `$USER` saying `alice` (which herd must
/// not believe) and waits until it holds both locks and has started its
/// sleep; returns the running herd, its playbook and host02's lock file text.
fn start_first(lab: &Lab) -> (common::Running, PathBuf, String) {
    let slow = lab.write("slow.yml", SLOW);
    let first = lab
        .herd(["run"])
        .arg(&slow)
        .args(["-l", "host01,host02"])
        .env("USER", "alice")
        .spawn();
    assert!(
        wait_until(Duration::from_secs(20), || {
            ["host01", "host02"]
                .iter()
                .all(|h| lab.lock_file(h).exists() && order(lab, h) == ["first"])
        }),
        "the first run never took its locks and ran its first step"
    );
    let lock = fs::read_to_string(lab.lock_file("host02")).unwrap();
    (first, slow, lock)
}

#[test]
fn a_second_run_on_a_locked_host_exits_3_naming_the_holder_and_runs_nothing() {
    let lab = Lab::up(3);
    let quick = lab.write("quick.yml", QUICK);
    let (first, slow, lock) = start_first(&lab);

    let second = lab
        .herd(["run"])
        .arg(&quick)
        .args(["-l", "host02,host03"])
        .run();
    let first_pid = first.pid();
    let first = first.wait();

    second.assert_code(3);
    first.assert_code(0);
    // The holder is the OS account herd runs as, not what `$USER` says.
    let holder = format!(
        "user {} on {} (pid {}), playbook {}, since {}",
        os_account(),
        controller(),
        field(&lock, "pid"),
        slow.display(),
        field(&lock, "since"),
    );
    assert_eq!(field(&lock, "pid"), first_pid.to_string(), "{lock}");
    assert!(
        second
            .stderr()
            .lines()
            .any(|l| l == format!("host02: DEPLOY LOCK HELD by {holder}")),
        "no `host02: DEPLOY LOCK HELD by {holder}` line\n{second}"
    );
    assert!(
        second
            .stderr()
            .lines()
            .any(|l| l == format!("deploy lock on host02 is held by {holder}")),
        "no summary line naming the holder\n{second}"
    );
    assert!(
        !second.stderr().contains("deploy lock on host03"),
        "host03 was free\n{second}"
    );
    // The second run did nothing anywhere, host03 (free) included.
    assert_eq!(order(&lab, "host01"), ["first"], "{second}");
    assert_eq!(order(&lab, "host02"), ["first"], "{second}");
    assert_eq!(order(&lab, "host03"), Vec::<String>::new(), "{second}");
    for name in ["host02", "host03"] {
        assert_eq!(second.summary_result(name), "untouched", "{second}");
    }
    assert_eq!(
        lab.hosts_with_lock_file(),
        Vec::<String>::new(),
        "{first}\n{second}"
    );
}

#[test]
fn with_lock_wait_the_second_run_waits_for_the_first_and_then_runs() {
    let lab = Lab::up(3);
    let quick = lab.write("quick.yml", QUICK);
    let (first, _, _) = start_first(&lab);

    let second = lab
        .herd(["run"])
        .arg(&quick)
        .args(["-l", "host02,host03", "--lock-wait", "10s"])
        .run();
    let first = first.wait();

    first.assert_code(0);
    second.assert_code(0);
    // On the shared host the second run's step came after the whole first
    // run (whose only write is before its sleep: without the lock, "second"
    // would have landed during that sleep, before the first run ended).
    assert_eq!(
        order(&lab, "host02"),
        ["first", "second"],
        "{first}\n{second}"
    );
    assert_eq!(order(&lab, "host01"), ["first"], "{second}");
    assert_eq!(order(&lab, "host03"), ["second"], "{second}");
    assert_eq!(
        lab.hosts_with_lock_file(),
        Vec::<String>::new(),
        "{first}\n{second}"
    );
}

/// A pid that no process has: a child that has exited and been reaped.
/// This machine's boot and the tests' pid namespace, as a lock records
/// them (`pids=BOOT_ID:INODE`): herd, started from here, shares both.
fn pid_space() -> String {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let namespace = fs::read_link("/proc/self/ns/pid").unwrap();
    let namespace = namespace.to_string_lossy();
    let inode = namespace
        .strip_prefix("pid:[")
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap();
    format!("{}:{inode}", boot.trim())
}

fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(!PathBuf::from(format!("/proc/{pid}")).exists());
    pid
}

const MARKER: &str = "\
name: Marker
hosts: web
steps:
  - name: Mark
    run: touch {{ app_dir }}/marker
";

#[test]
fn a_stale_lock_of_this_controller_is_broken() {
    let lab = Lab::up(2);
    let playbook = lab.write("marker.yml", MARKER);
    let stale = format!(
        "run=dead-1 user=bob controller={} pid={} pids={} since=2020-01-01T00:00:00Z playbook=old.yml\n",
        controller(),
        dead_pid(),
        pid_space()
    );
    fs::write(lab.lock_file("host02"), &stale).unwrap();

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(0);
    for host in lab.hosts() {
        assert!(host.app_dir.join("marker").exists(), "{}\n{run}", host.name);
    }
    assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new(), "{run}");
}

#[test]
fn a_lock_of_a_container_with_this_host_name_is_not_taken_for_stale() {
    let lab = Lab::up(1);
    let playbook = lab.write("marker.yml", MARKER);
    // Same host name, a pid no process here has, but another pid namespace
    // (a container sharing the host name, whose herd may well be alive):
    // and a lock from before herd recorded namespaces.
    let boot = pid_space().split(':').next().unwrap().to_string();
    for pids in [format!("pids={boot}:1 "), String::new()] {
        let held = format!(
            "run=ns-1 user=bob controller={} pid={} {pids}since=2020-01-01T00:00:00Z playbook=old.yml\n",
            controller(),
            dead_pid(),
        );
        fs::write(lab.lock_file("host01"), &held).unwrap();

        let run = lab.herd(["run"]).arg(&playbook).run();

        run.assert_code(3);
        assert!(
            run.stderr()
                .contains("host01: DEPLOY LOCK HELD by user bob on"),
            "{run}"
        );
        assert!(!lab.app_dir("host01").join("marker").exists(), "{run}");
        assert_eq!(fs::read_to_string(lab.lock_file("host01")).unwrap(), held);
        // A lock from before namespaces were recorded says how to clear it.
        let hint = "no process here has that pid, but the lock does not say which pid namespace it is from: if no herd holds it, `herd unlock` removes it";
        assert_eq!(run.stderr().contains(hint), pids.is_empty(), "{run}");
    }
}

#[test]
fn a_lock_of_another_controller_is_respected_and_left_in_place() {
    let lab = Lab::up(2);
    let playbook = lab.write("marker.yml", MARKER);
    let foreign = "run=far-1 user=carol controller=elsewhere pid=1 since=2020-01-01T00:00:00Z playbook=deploy.yml\n";
    fs::write(lab.lock_file("host02"), foreign).unwrap();

    let run = lab.herd(["run"]).arg(&playbook).run();
    let json = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--output", "json"])
        .run();

    run.assert_code(3);
    let holder = "user carol on elsewhere (pid 1), playbook deploy.yml, since 2020-01-01T00:00:00Z";
    assert!(
        run.stderr()
            .lines()
            .any(|l| l == format!("host02: DEPLOY LOCK HELD by {holder}")),
        "{run}"
    );
    assert!(
        run.stderr()
            .lines()
            .any(|l| l == format!("deploy lock on host02 is held by {holder}")),
        "{run}"
    );
    json.assert_code(3);
    let events = json.json_events();
    let report = &events.last().expect("no events")["report"];
    assert_eq!(
        report["lock_held"],
        serde_json::json!([{ "host": "host02", "holder": holder }]),
        "{json}"
    );
    for host in lab.hosts() {
        assert!(
            !host.app_dir.join("marker").exists(),
            "{}\n{run}",
            host.name
        );
    }
    // Someone else's lock is theirs to remove; the one herd took on host01
    // was given back.
    assert_eq!(
        fs::read_to_string(lab.lock_file("host02")).unwrap(),
        foreign
    );
    assert_eq!(lab.hosts_with_lock_file(), ["host02"], "{run}");
}

#[test]
fn herd_unlock_removes_a_lock_left_by_a_dead_controller_and_says_whose_it_was() {
    let lab = Lab::up(2);
    let playbook = lab.write("marker.yml", MARKER);
    let foreign = "run=far-2 user=carol controller=ci-runner-7 pid=4242 since=2020-01-01T00:00:00Z playbook=deploy.yml\n";
    fs::write(lab.lock_file("host02"), foreign).unwrap();

    let unlock = lab.herd(["unlock"]).run();

    unlock.assert_code(0);
    assert_eq!(
        unlock.stdout(),
        "host01: no deploy lock\nhost02: removed the deploy lock held by user carol on ci-runner-7 (pid 4242), playbook deploy.yml, since 2020-01-01T00:00:00Z\n",
        "{unlock}"
    );
    assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new());
    // The next run is no longer blocked.
    lab.herd(["run"]).arg(&playbook).run().assert_code(0);
    assert!(lab.app_dir("host02").join("marker").exists());
}

/// The lab inventory with host01 listed a second time as `host01b`: the
/// same machine, port, account and lock file (a second app server on one
/// box).
fn host01_twice(lab: &Lab) -> PathBuf {
    lab.edited_inventory("twice.yml", |text| {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("host01: {"))
            .expect("host01's line")
            .to_string();
        text.replacen(
            &format!("{line}\n"),
            &format!("{line}\n{}\n", line.replacen("host01:", "host01b:", 1)),
            1,
        )
    })
}

#[test]
fn two_names_for_one_machine_share_the_run_s_lock_and_exclude_another_run() {
    let lab = Lab::up(2);
    let inventory = host01_twice(&lab);
    let slow = lab.write("slow.yml", SLOW);
    let quick = lab.write("quick.yml", QUICK);

    // One host per batch: host01b's batch comes after host01's, so the lock
    // both use must still be held while host01b runs.
    let first = Herd::new()
        .args(["run"])
        .arg(&slow)
        .arg("-i")
        .arg(&inventory)
        .args(["-l", "host01,host01b", "--batch", "1"])
        .spawn();
    assert!(
        wait_until(Duration::from_secs(30), || order(&lab, "host01")
            == ["first", "first"]),
        "the second batch (host01b) never ran its first step"
    );
    let lock = fs::read_to_string(lab.lock_file("host01")).unwrap();
    let second = lab.herd(["run"]).arg(&quick).args(["-l", "host01"]).run();
    let first_pid = first.pid();
    let first = first.wait();

    first.assert_code(0);
    assert_eq!(first.summary_result("host01"), "done", "{first}");
    assert_eq!(first.summary_result("host01b"), "done", "{first}");
    assert_eq!(field(&lock, "pid"), first_pid.to_string(), "{lock}");
    // Another run is still kept out, and told who holds the lock.
    second.assert_code(3);
    assert!(
        second.stderr().lines().any(|l| l.starts_with(&format!(
            "host01: DEPLOY LOCK HELD by user {} on {} (pid {first_pid}),",
            os_account(),
            controller()
        ))),
        "{second}"
    );
    assert_eq!(order(&lab, "host01"), ["first", "first"], "{second}");
    // Given back once, at the end: no lock file is left.
    assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new(), "{first}");
}

#[test]
fn two_names_for_one_machine_in_one_batch_run_together() {
    let lab = Lab::up(2);
    let inventory = host01_twice(&lab);
    let quick = lab.write("quick.yml", QUICK);

    let run = Herd::new()
        .args(["run"])
        .arg(&quick)
        .arg("-i")
        .arg(&inventory)
        .run();

    run.assert_code(0);
    for name in ["host01", "host01b", "host02"] {
        assert_eq!(run.summary_result(name), "done", "{run}");
    }
    assert_eq!(order(&lab, "host01"), ["second", "second"], "{run}");
    assert_eq!(order(&lab, "host02"), ["second"], "{run}");
    assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new(), "{run}");
}

/// A directory the lab account may read but not write (the tests run as
/// another account, which owns it).
fn read_only_dir(lab: &Lab) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = lab.dir().join("read-only");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The lab inventory with host02's lock file at `path`.
fn host02_locked_at(lab: &Lab, path: &std::path::Path) -> PathBuf {
    lab.edited_inventory("lock-path.yml", |text| {
        text.replace(
            &format!("herd_lock_file: {} ", lab.lock_file("host02").display()),
            &format!("herd_lock_file: {} ", path.display()),
        )
    })
}

#[test]
fn a_lock_file_that_cannot_be_created_is_an_error_naming_host_path_and_reason() {
    let lab = Lab::up(2);
    if lab.user() == os_account() {
        eprintln!("skipped: the lab logs in as this account, which can write anywhere here");
        return;
    }
    let playbook = lab.write("marker.yml", MARKER);
    let read_only = read_only_dir(&lab);
    // Permission denied on the file itself; then on a directory to create.
    for path in [read_only.join("lock"), read_only.join("missing/lock")] {
        let inventory = host02_locked_at(&lab, &path);

        let run = Herd::new()
            .args(["run"])
            .arg(&playbook)
            .arg("-i")
            .arg(&inventory)
            .run();

        run.assert_code(1);
        let prefix = format!(
            "herd: ROLLOUT ABORTED: host02: cannot create the deploy lock {}: ",
            path.display()
        );
        let line = run
            .stderr()
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?}\n{run}"));
        assert!(
            line.contains("Permission denied") && line.ends_with(": the rollout did not start"),
            "{line}"
        );
        assert!(!run.stderr().contains("HELD"), "{run}");
        assert!(!run.stderr().contains("unknown holder"), "{run}");
        assert!(
            run.summary_row("host02")
                .contains(&format!("cannot create the deploy lock {}", path.display())),
            "{run}"
        );
        assert!(
            run.summary_row("host01")
                .ends_with("the deploy lock could not be taken on every host: nothing ran"),
            "{run}"
        );
        for host in lab.hosts() {
            assert!(
                !host.app_dir.join("marker").exists(),
                "{}\n{run}",
                host.name
            );
        }
        // host01's lock, taken meanwhile, was given back.
        assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new(), "{run}");
        assert!(!path.exists());
    }
}

#[test]
fn herd_unlock_removes_a_lock_shared_by_two_names_once() {
    let lab = Lab::up(2);
    let inventory = host01_twice(&lab);
    let foreign = "run=far-3 user=carol controller=ci-runner-7 pid=4242 since=2020-01-01T00:00:00Z playbook=deploy.yml\n";
    fs::write(lab.lock_file("host01"), foreign).unwrap();

    let unlock = Herd::new().args(["unlock", "-i"]).arg(&inventory).run();

    unlock.assert_code(0);
    assert_eq!(
        unlock.stdout(),
        "host01: removed the deploy lock held by user carol on ci-runner-7 (pid 4242), playbook deploy.yml, since 2020-01-01T00:00:00Z\n\
         host01b: the same deploy lock as host01\n\
         host02: no deploy lock\n",
        "{unlock}"
    );
    assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new());
}

#[test]
fn herd_unlock_says_when_the_holder_still_runs_here() {
    let lab = Lab::up(1);
    // This test's own process stands for a herd that still runs.
    let live = format!(
        "run=live-1 user=bob controller={} pid={} pids={} since=2020-01-01T00:00:00Z playbook=deploy.yml\n",
        controller(),
        std::process::id(),
        pid_space()
    );
    fs::write(lab.lock_file("host01"), &live).unwrap();

    let unlock = lab.herd(["unlock"]).run();

    unlock.assert_code(0);
    assert_eq!(
        unlock.stdout(),
        format!(
            "host01: removed the deploy lock held by user bob on {} (pid {}), playbook deploy.yml, since 2020-01-01T00:00:00Z; that herd still runs on this controller and may go on changing the host\n",
            controller(),
            std::process::id()
        ),
        "{unlock}"
    );
    assert_eq!(lab.hosts_with_lock_file(), Vec::<String>::new(), "{unlock}");
}
