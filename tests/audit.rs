//! The audit trail: every `herd run` and `herd reload` appends one JSON line
//! per reached host to that host's `herd_audit_log` (the lab sets one per
//! host in its app directory), read back here from the file and through
//! `herd audit`. Secrets are masked in it, concurrent runs sharing one file
//! leave whole lines, an unreachable host gets no line, and a line that
//! cannot be written is a warning that changes nothing about the run.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Herd, Lab};
use serde_json::Value;

const GOOD: &str = "\
name: Good
hosts: web
steps:
  - name: Mark
    run: echo ok > {{ app_dir }}/mark
";

const BAD: &str = "\
name: Bad
hosts: web
steps:
  - name: Break
    run: echo \"went wrong\tbadly\" >&2; exit 3
";

/// The account the tests (and the herd they start) run as.
fn os_account() -> String {
    // SAFETY: getpwuid's entry is read at once, and checked for null.
    unsafe {
        let entry = libc::getpwuid(libc::geteuid());
        assert!(!entry.is_null(), "this account has no password entry");
        std::ffi::CStr::from_ptr((*entry).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

fn controller() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// The lines of an audit log, each parsed (a line that is not one JSON
/// object fails the test); empty when the file does not exist.
fn entries(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {line:?}", path.display()))
        })
        .collect()
}

/// The fields of an entry, the time left out (checked for its shape).
fn fields(entry: &Value) -> Vec<(String, String)> {
    let object = entry.as_object().unwrap();
    let time = object["time"].as_str().unwrap();
    assert_eq!(time.len(), 20, "{time}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    object
        .iter()
        .filter(|(key, _)| *key != "time")
        .map(|(key, value)| (key.clone(), value.as_str().unwrap().to_string()))
        .collect()
}

fn expected(
    playbook: &str,
    release: &str,
    result: &str,
    reason: Option<&str>,
) -> Vec<(String, String)> {
    let mut fields = vec![
        ("user".to_string(), os_account()),
        ("controller".to_string(), controller()),
        ("command".to_string(), "run".to_string()),
        ("playbook".to_string(), playbook.to_string()),
        ("release".to_string(), release.to_string()),
        ("result".to_string(), result.to_string()),
    ];
    if let Some(reason) = reason {
        fields.push(("reason".to_string(), reason.to_string()));
    }
    fields.sort();
    fields
}

fn sorted(mut fields: Vec<(String, String)>) -> Vec<(String, String)> {
    fields.sort();
    fields
}

#[test]
fn a_run_and_a_failing_run_append_one_line_each_per_host_and_herd_audit_shows_them() {
    let lab = Lab::up(2);
    let good = lab.write("good.yml", GOOD);
    let bad = lab.write("bad.yml", BAD);
    let good_name = good.display().to_string();
    let bad_name = bad.display().to_string();

    let first = lab.herd(["run", "-e", "release=v1"]).arg(&good).run();
    let second = lab.herd(["run", "-e", "release=v2"]).arg(&bad).run();
    let shown = lab.herd(["audit", "--last", "1"]).run();
    let json = lab.herd(["audit", "--last", "1", "--output", "json"]).run();
    let all = lab.herd(["audit"]).run();

    first.assert_code(0);
    second.assert_code(1);
    let reason = "step 1 `Break`: exited with code 3: went wrong\tbadly";
    for host in ["host01", "host02"] {
        let lines = entries(&lab.audit_log(host));
        assert_eq!(lines.len(), 2, "{host}: {lines:?}");
        assert_eq!(
            sorted(fields(&lines[0])),
            expected(&good_name, "v1", "done", None)
        );
        assert_eq!(
            sorted(fields(&lines[1])),
            expected(&bad_name, "v2", "failed", Some(reason))
        );
        let mode = fs::metadata(lab.audit_log(host))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{host}");
    }

    shown.assert_code(0);
    let shown_lines: Vec<&str> = shown.stdout().lines().collect();
    assert_eq!(shown_lines.len(), 2, "{shown}");
    for (line, host) in shown_lines.iter().zip(["host01", "host02"]) {
        let tail = format!(
            " {}@{} run {bad_name} release=v2 failed: {reason}",
            os_account(),
            controller()
        );
        assert!(line.starts_with(&format!("{host}: ")), "{shown}");
        assert!(line.ends_with(&tail), "{line:?} should end with {tail:?}");
    }
    json.assert_code(0);
    let objects: Vec<Value> = json
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 2, "{json}");
    for (object, host) in objects.iter().zip(["host01", "host02"]) {
        assert_eq!(object["host"], host, "{json}");
        assert_eq!(object["result"], "failed", "{json}");
        assert_eq!(object["reason"], reason, "{json}");
        assert_eq!(object["release"], "v2", "{json}");
    }
    all.assert_code(0);
    assert_eq!(all.stdout().lines().count(), 4, "{all}");
}

#[test]
fn herd_reload_is_recorded_as_reload() {
    let lab = Lab::up(1);

    let run = lab
        .herd([
            "reload",
            "--pidfile",
            "{{ gunicorn_pidfile }}",
            "--settle",
            "0s",
        ])
        .run();

    run.assert_code(0);
    let lines = entries(&lab.audit_log("host01"));
    assert_eq!(lines.len(), 1, "{run}");
    assert_eq!(lines[0]["command"], "reload");
    assert_eq!(lines[0]["playbook"], "-");
    assert_eq!(lines[0]["release"], "-");
    assert_eq!(lines[0]["result"], "done");
    assert!(lines[0].get("reason").is_none(), "{}", lines[0]);
}

#[test]
fn a_secret_in_a_failure_reason_is_masked_in_the_audit_line() {
    let lab = Lab::up(1);
    let playbook = lab.write(
        "leak.yml",
        "hosts: web\nsteps:\n  - name: Leak\n    run: echo denied for {{ tok }} >&2; exit 1\n",
    );

    let run = lab
        .herd([
            "run",
            "-e",
            "herd_secret_vars=tok",
            "-e",
            "tok=tok-s3cret-value",
        ])
        .arg(&playbook)
        .run();

    run.assert_code(1);
    let text = fs::read_to_string(lab.audit_log("host01")).unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    let lines = entries(&lab.audit_log("host01"));
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(
        lines[0]["reason"], "step 1 `Leak`: exited with code 1: denied for ***",
        "{text}"
    );
}

#[test]
fn runs_on_disjoint_hosts_sharing_one_audit_file_leave_whole_lines() {
    let lab = Lab::up(4);
    // Every lab host logs in as the same account on this machine: a file in
    // host01's app directory is one all four can write.
    let shared = lab.app_dir("host01").join("shared-audit.log");
    let inventory = lab.edited_inventory("shared.yml", |text| {
        lab.hosts().iter().fold(text.to_string(), |text, host| {
            text.replace(
                &format!("herd_audit_log: {},", lab.audit_log(&host.name).display()),
                &format!("herd_audit_log: {},", shared.display()),
            )
        })
    });
    // Long lines (the reason near the size limit) make a torn write show.
    let playbook = lab.write(
        "long.yml",
        "hosts: web\nsteps:\n  - name: Fail long\n    run: printf '%02000d\\n' 0 >&2; exit 1\n",
    );

    // Rounds of four runs at once, one host each.
    let rounds = 3;
    let mut runs = Vec::new();
    for _ in 0..rounds {
        let round: Vec<common::Running> = ["host01", "host02", "host03", "host04"]
            .into_iter()
            .map(|host| {
                Herd::new()
                    .args(["run", "-i"])
                    .arg(&inventory)
                    .args(["-l", host])
                    .arg(&playbook)
                    .spawn()
            })
            .collect();
        runs.extend(round.into_iter().map(common::Running::wait));
    }

    for run in &runs {
        run.assert_code(1);
    }
    let text = fs::read_to_string(&shared).unwrap();
    let lines = entries(&shared);
    assert_eq!(lines.len(), rounds * 4, "{text}");
    let zeros = "0".repeat(2000);
    for line in &lines {
        assert_eq!(line["result"], "failed", "{line}");
        assert_eq!(
            line["reason"],
            format!("step 1 `Fail long`: exited with code 1: {zeros}"),
        );
    }
    for host in ["host01", "host02", "host03", "host04"] {
        assert!(!lab.audit_log(host).exists(), "{host}");
    }
}

#[test]
fn a_custom_audit_log_path_is_honoured_and_created_private() {
    let lab = Lab::up(1);
    let top = lab.app_dir("host01").join("audit");
    let custom = top.join("deep").join("trail.log");
    let inventory = lab.edited_inventory("custom.yml", |text| {
        text.replace(
            &format!("herd_audit_log: {}", lab.audit_log("host01").display()),
            &format!("herd_audit_log: {}", custom.display()),
        )
    });

    let run = Herd::new()
        .args(["run", "-i"])
        .arg(&inventory)
        .arg(lab.write("good.yml", GOOD))
        .run();
    let shown = Herd::new().args(["audit", "-i"]).arg(&inventory).run();

    run.assert_code(0);
    assert_eq!(entries(&custom).len(), 1, "{run}");
    assert!(!lab.audit_log("host01").exists(), "{run}");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&custom), 0o600);
    assert_eq!(mode(custom.parent().unwrap()), 0o700);
    assert_eq!(mode(&top), 0o700);
    shown.assert_code(0);
    assert_eq!(shown.stdout().lines().count(), 1, "{shown}");
    assert!(shown.stdout().starts_with("host01: "), "{shown}");
}

#[test]
fn an_unreachable_host_gets_no_line_and_the_exit_code_stands() {
    let lab = Lab::up(3);
    lab.host("host03").kill_sshd();
    let playbook = lab.write(
        "tolerant.yml",
        "hosts: web\nrolling:\n  max_fail: 1\nsteps:\n  - name: Mark\n    run: echo ok > {{ app_dir }}/mark\n",
    );

    let run = lab.herd(["run"]).arg(&playbook).run();
    let shown = lab.herd(["audit"]).run();

    run.assert_code(1);
    for host in ["host01", "host02"] {
        let lines = entries(&lab.audit_log(host));
        assert_eq!(lines.len(), 1, "{host}: {run}");
        assert_eq!(lines[0]["result"], "done", "{host}");
    }
    assert!(!lab.audit_log("host03").exists(), "{run}");
    assert!(!run.stderr().contains("audit"), "{run}");
    shown.assert_code(1);
    assert_eq!(shown.stdout().lines().count(), 2, "{shown}");
    assert!(shown.stderr().starts_with("host03: FAILED: "), "{shown}");
}

#[test]
fn an_audit_line_that_cannot_be_written_is_a_warning_and_the_run_succeeds() {
    let lab = Lab::up(1);
    let inventory = lab.edited_inventory("broken.yml", |text| {
        text.replace(
            &format!("herd_audit_log: {}", lab.audit_log("host01").display()),
            "herd_audit_log: /dev/null/audit.log",
        )
    });

    let run = Herd::new()
        .args(["run", "-i"])
        .arg(&inventory)
        .arg(lab.write("good.yml", GOOD))
        .run();

    run.assert_code(0);
    assert!(
        run.stderr().lines().any(|line| line
            .starts_with("host01: warning: cannot append to the audit log /dev/null/audit.log: ")),
        "{run}"
    );
    assert_eq!(run.summary_result("host01"), "done", "{run}");
}
