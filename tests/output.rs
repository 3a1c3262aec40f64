//! What herd writes for CI: JUnit reports, plain output without escape codes
//! when not on a terminal, colours only when asked, and secrets masked everywhere.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{plan_and_json_run, unique, Lab, Run};

/// Parses `path` as XML with Python's parser; returns (tests, failures, failing case names).
fn junit_summary(path: &std::path::Path) -> (String, String, Vec<String>) {
    let script = "import sys, xml.etree.ElementTree as E\n\
        suite = E.parse(sys.argv[1]).getroot().find('testsuite')\n\
        print(suite.get('tests'), suite.get('failures'))\n\
        for case in suite.findall('testcase'):\n\
        \x20   f = case.find('failure')\n\
        \x20   if f is not None: print(case.get('name') + ' | ' + f.get('message'))\n";
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "not valid XML: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let mut lines = text.lines();
    let counts: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split(' ')
        .map(str::to_string)
        .collect();
    (
        counts[0].clone(),
        counts[1].clone(),
        lines.map(str::to_string).collect(),
    )
}

const FAILS_ON_HOST02: &str = "hosts: web\nrolling:\n  max_fail: 1\nsteps:\n  - name: Check the host\n    run: test {{ inventory_hostname }} != host02\n";

#[test]
fn a_junit_report_has_one_case_per_host_and_names_the_failed_step() {
    let lab = Lab::up(3);
    let playbook = lab.write("fails.yml", FAILS_ON_HOST02);
    let report = lab.dir().join("junit.xml");

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .arg("--report")
        .arg(&report)
        .run();

    run.assert_code(1);
    let (tests, failures, failing) = junit_summary(&report);
    assert_eq!((tests.as_str(), failures.as_str()), ("3", "1"));
    assert_eq!(
        failing,
        vec!["host02 | step 1 \"Check the host\": exited with code 1".to_string()]
    );
}

#[test]
fn piped_output_has_no_escape_codes_unless_colour_is_forced() {
    let lab = Lab::up(2);
    let playbook = lab.write("fails.yml", FAILS_ON_HOST02);

    let plain = lab.herd(["run"]).arg(&playbook).run();
    plain.assert_code(1);
    assert!(
        !plain.stderr().contains('\u{1b}') && !plain.stdout().contains('\u{1b}'),
        "{plain}"
    );
    assert!(
        plain
            .stderr()
            .contains("host02: [1/1] Check the host: FAILED: exit code 1"),
        "{plain}"
    );

    let coloured = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--color", "always"])
        .run();
    assert!(coloured.stderr().contains("\u{1b}["), "{coloured}");

    let no_color = lab.herd(["run"]).arg(&playbook).env("NO_COLOR", "1").run();
    assert!(!no_color.stderr().contains('\u{1b}'), "{no_color}");
}

/// A playbook and a step whose names hold a newline, a carriage return
/// and an escape, each followed by a line herd could have written; the
/// step's stderr tries the same with a carriage return, a cursor move and
/// a GitLab section marker, and says one thing in red.
const FORGING_NAMES: &str = r#"name: "Deploy\nherd: ROLLOUT DONE"
hosts: web
steps:
  - name: "Check\nhost02: reload: ok\r\e[2K"
    run: |
      printf 'x\rhost02: reload: ok\n\033[1A\033[0Ksection_end:1:herd_batch_1\r\033[0K\n\033[31mred\033[0m\n' >&2
      test {{ inventory_hostname }} != host02
"#;

#[test]
fn a_name_with_a_newline_or_an_escape_stays_on_herds_own_line() {
    let lab = Lab::up(2);
    let playbook = lab.write("forge.yml", FORGING_NAMES);

    let job_summary = lab.dir().join("summary.md");
    for ci_format in ["none", "github", "gitlab"] {
        let run = lab
            .herd(["run"])
            .arg(&playbook)
            .args(["--ci-format", ci_format])
            .env("GITHUB_STEP_SUMMARY", &job_summary)
            .run();
        run.assert_code(1);
        // Piped, without colour: the host's colours go too. GitLab's
        // section markers are herd's own escapes, one pair per batch: no
        // other escape is left.
        assert!(run.stderr().contains("host02:     red\n"), "{run}");
        assert!(
            run.stderr().contains("host02:     host02: reload: ok\n"),
            "{run}"
        );
        let markers = run.stderr().matches("\u{1b}[0Ksection_end:").count();
        assert_eq!(markers, usize::from(ci_format == "gitlab"), "{run}");
        let text = format!("{}{}", run.stderr(), run.stdout())
            .replace("\u{1b}[0Ksection_", "section_")
            .replace("\r\u{1b}[0K", " ");
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{run}");
        for line in text.lines() {
            assert!(
                !line.starts_with("host02: reload") && !line.starts_with("herd: ROLLOUT DONE"),
                "a forged line {line:?}\n{run}"
            );
        }
        assert!(
            run.stderr().lines().any(|l| l
                .starts_with("host02: [1/1] Check host02: reload: ok  [2K: FAILED: exit code 1 (")),
            "{run}"
        );
        assert!(
            run.stderr()
                .contains("Deploy herd: ROLLOUT DONE: 2 host(s)"),
            "{run}"
        );
    }
    // With colour asked for, the host's colour stays, and is reset at the
    // end of its line.
    let coloured = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--color", "always"])
        .run();
    assert!(
        coloured
            .stderr()
            .contains("host02:     \u{1b}[31mred\u{1b}[0m\u{1b}[0m"),
        "{coloured}"
    );
    // The job summary quotes the stderr as text: no colour, no escape.
    let summary = fs::read_to_string(&job_summary).expect("a job summary");
    assert!(summary.contains("\nhost02: reload: ok\n"), "{summary}");
    assert!(summary.contains("\nred\n"), "{summary}");
    assert!(
        !summary.contains('\u{1b}') && !summary.contains('\r'),
        "{summary}"
    );
    let json = lab.herd(["run", "--output", "json"]).arg(&playbook).run();
    let names: Vec<String> = json
        .json_events()
        .into_iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["Check host02: reload: ok  [2K"; 2], "{json}");
}

/// A health command that fails saying what a hostile host would: a line
/// of herd's after a carriage return and a GitLab section marker.
const FORGING_VALIDATE: &str = r#"hosts: web
steps:
  - run: "true"
validate:
  run: "printf 'x\\n\\033[0Ksection_start:1:evil[collapsed=true]\\r\\033[0Kherd: all hosts done\\n' >&2; exit 1"
"#;

#[test]
fn what_a_failed_health_command_said_is_quoted_under_the_hosts_name() {
    let lab = Lab::up(1);
    let playbook = lab.write("validate.yml", FORGING_VALIDATE);
    let report = lab.dir().join("junit.xml");

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--ci-format", "gitlab", "--report"])
        .arg(&report)
        .run();

    run.assert_code(1);
    // herd's own section markers, and no other escape or carriage return.
    let own = run
        .stderr()
        .replace("\u{1b}[0Ksection_start:", "")
        .replace("\u{1b}[0Ksection_end:", "")
        .replace("\r\u{1b}[0K", "");
    assert!(!own.contains('\u{1b}') && !own.contains('\r'), "{run}");
    assert!(!run.stderr().contains("evil"), "{run}");
    for line in run.stderr().lines() {
        assert!(!line.starts_with("herd: all hosts done"), "{line:?}\n{run}");
    }
    assert!(
        run.stderr().lines().any(
            |l| l == "host01: reload FAILED: proof `run`: validate.run failed (exit code 1): x"
        ),
        "{run}"
    );
    assert!(
        run.stderr()
            .lines()
            .any(|l| l.starts_with("host01:     herd: all hosts done")),
        "{run}"
    );
    // The summary's note is one cell on one line.
    assert!(
        run.summary_row("host01")
            .contains("validate.run failed (exit code 1): x / herd: all hosts done"),
        "{run}"
    );
    let junit = fs::read_to_string(&report).unwrap();
    assert!(
        !junit.contains('\u{1b}') && !junit.contains("evil"),
        "{junit}"
    );
}

/// Fails the test if `text` holds an escape or a carriage return, or a
/// line starting with `forged`.
fn assert_one_line_each(what: &str, text: &str, forged: &str) {
    assert!(
        !text.contains('\u{1b}') && !text.contains('\r') && !text.contains('\u{7}'),
        "{what}: {text:?}"
    );
    for line in text.lines() {
        assert!(!line.starts_with(forged), "{what}: a forged line {line:?}");
    }
}

#[test]
fn what_a_hosts_own_files_say_is_shown_on_one_line_without_escapes() {
    let lab = Lab::up(1);
    let app = lab.app_dir("host01");
    // A lock held by a "holder" whose fields hold escapes and a newline.
    fs::write(
        lab.lock_file("host01"),
        "run=1 user=ev\u{1b}[31mil\u{1b}]0;T\u{7} controller=c\rherd: forged pid=1 since=now playbook=x\nherd: second line forged\n",
    )
    .unwrap();
    let playbook = lab.write(
        "release.yml",
        "hosts: web\nrelease:\n  path: \"{{ app_dir }}\"\nsteps:\n  - run: \"true\"\n",
    );
    let held = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--lock-wait", "0s"])
        .run();
    held.assert_code(3);
    assert!(
        held.stderr()
            .contains("host01: DEPLOY LOCK HELD by user ev"),
        "{held}"
    );
    assert_one_line_each("a held lock", held.stderr(), "herd: second line forged");
    let unlock = lab.herd(["unlock"]).run();
    unlock.assert_code(0);
    assert!(
        unlock
            .stdout()
            .starts_with("host01: removed the deploy lock held by user ev"),
        "{unlock}"
    );
    assert_one_line_each("herd unlock", unlock.stdout(), "herd: second line forged");

    // An audit log with a forged entry and a raw line.
    fs::write(
        lab.audit_log("host01"),
        "{\"time\":\"2026\",\"user\":\"ev\\u001b[31mil\\nhost02: 2026 forged\",\"controller\":\"vm\\r\",\"command\":\"run\",\"playbook\":\"p\\u0007.yml\",\"release\":\"-\",\"result\":\"done\"}\nraw \u{1b}[31m garbage\n",
    )
    .unwrap();
    let audit = lab.herd(["audit"]).run();
    audit.assert_code(0);
    assert_eq!(audit.stdout().lines().count(), 2, "{audit}");
    assert!(
        audit.stdout().starts_with(
            "host01: 2026 ev [31mil host02: 2026 forged@vm  run p .yml release=- done\n"
        ),
        "{audit}"
    );
    assert_one_line_each("herd audit", audit.stdout(), "host02: 2026 forged");

    // A release switched "by" a forged line, and `current` naming a
    // release whose name holds an escape.
    let evil = "e\u{1b}]0;T\u{7}vil";
    fs::create_dir_all(app.join("releases").join(evil)).unwrap();
    fs::remove_file(app.join("current")).unwrap();
    std::os::unix::fs::symlink(format!("releases/{evil}"), app.join("current")).unwrap();
    fs::write(
        app.join(".herd-switch"),
        format!(
            "current {evil}\nat 2026\x1b[31mX\nby root@vm\x1b]0;T\x07\rherd: forged\ncommand run\n"
        ),
    )
    .unwrap();
    let releases = lab.herd(["releases"]).arg(&playbook).run();
    releases.assert_code(0);
    assert!(
        releases
            .stdout()
            .contains("all 1 host(s) read are on e ]0;T vil"),
        "{releases}"
    );
    assert_one_line_each("herd releases", releases.stdout(), "herd: forged");
}

#[test]
fn a_secret_from_the_environment_appears_in_no_output_even_when_its_step_fails() {
    let lab = Lab::up(2);
    let secret = unique("s3cret-token");
    let playbook = lab.write(
        "secret.yml",
        "hosts: web\nsteps:\n  - name: Log in\n    run: echo token {{ env.HERD_TEST_TOKEN }}; echo bad token {{ env.HERD_TEST_TOKEN }} >&2; exit 7\n",
    );
    let report = lab.dir().join("junit.xml");

    let human = lab
        .herd(["run"])
        .arg(&playbook)
        .env("HERD_TEST_TOKEN", &secret)
        .arg("--report")
        .arg(&report)
        .run();
    let json = lab
        .herd(["run", "--output", "json"])
        .arg(&playbook)
        .env("HERD_TEST_TOKEN", &secret)
        .run();
    let plan = lab
        .herd(["plan"])
        .arg(&playbook)
        .env("HERD_TEST_TOKEN", &secret)
        .run();

    human.assert_code(1);
    json.assert_code(1);
    plan.assert_code(0);
    let junit = fs::read_to_string(&report).unwrap();
    for (what, text) in [
        ("stdout", human.stdout()),
        ("stderr", human.stderr()),
        ("json", json.stdout()),
        ("json stderr", json.stderr()),
        ("plan", plan.stdout()),
        ("junit", junit.as_str()),
    ] {
        assert!(
            !text.contains(&secret),
            "the secret leaked into {what}:\n{text}"
        );
    }
    // The failing step's output is there, masked.
    assert!(human.stderr().contains("bad token ***"), "{human}");
    assert!(junit.contains("bad token ***"), "{junit}");
    let finished = json.step_finished();
    assert_eq!(finished["stdout"], "token ***\n");
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let run = common::Herd::new().args(["completions", shell]).run();
        run.assert_code(0);
        assert!(
            run.stdout().contains("herd") && run.stdout().contains("reload"),
            "{shell}: {run}"
        );
    }
}

/// `herd hosts --vars`, `herd plan` and `herd run --output json` of
/// `playbook` on `inventory`; each must exit 0.
fn hosts_plan_and_run(inventory: &Path, playbook: &Path) -> (Run, Run, Run) {
    let hosts = common::Herd::new()
        .args(["hosts", "--vars", "-i"])
        .arg(inventory)
        .run();
    let (plan, run) = plan_and_json_run(inventory, playbook);

    hosts.assert_code(0);
    plan.assert_code(0);
    run.assert_code(0);
    (hosts, plan, run)
}

#[test]
fn a_secret_var_named_as_a_string_is_masked_in_hosts_plan_and_run_even_when_quoted() {
    let lab = Lab::up(1);
    let secret = format!("k'ey-{}", unique("x"));
    let quoted_inside = secret.replace('\'', r"'\''");
    let inventory = lab.inventory_with_vars(&format!(
        "    herd_secret_vars: api_key\n    api_key: \"{secret}\"\n"
    ));
    let playbook = lab.write(
        "key.yml",
        "hosts: web\nsteps:\n  - name: Use the key\n    run: echo {{ api_key }}; echo {{ api_key }} >&2; printf '%s\\n' {{ api_key }} | wc -c\n",
    );

    let (hosts, plan, run) = hosts_plan_and_run(&inventory, &playbook);

    for (what, text) in [
        ("hosts", hosts.stdout()),
        ("plan", plan.stdout()),
        ("run", run.stdout()),
        ("run stderr", run.stderr()),
    ] {
        assert!(
            !text.contains(&secret) && !text.contains(&quoted_inside) && !text.contains("ey-"),
            "the secret leaked into {what}:\n{text}"
        );
    }
    assert!(hosts.stdout().contains("\"api_key\": \"***\""), "{hosts}");
    assert!(
        plan.stdout()
            .contains("echo '***'; echo '***' >&2; printf '%s\\n' '***' | wc -c"),
        "{plan}"
    );
    let finished = run.step_finished();
    // The key reached the host whole (its length), and came back masked.
    let length = secret.len() + 1;
    assert_eq!(finished["stdout"], format!("***\n{length}\n"), "{run}");
    assert_eq!(finished["stderr"], "***\n", "{run}");
}

#[test]
fn a_short_secret_is_masked_where_it_is_used() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars("    herd_secret_vars: [pin]\n    pin: 42\n");
    let playbook = lab.write(
        "pin.yml",
        "hosts: web\nsteps:\n  - name: Unlock\n    run: echo pin={{ pin }}; echo 1425\n",
    );

    let (hosts, plan, run) = hosts_plan_and_run(&inventory, &playbook);

    assert!(hosts.stdout().contains("\"pin\": \"***\""), "{hosts}");
    assert!(!hosts.stdout().contains("\"pin\": 42"), "{hosts}");
    assert!(
        plan.stdout().contains("echo pin='***'; echo 1425"),
        "{plan}"
    );
    assert!(!plan.stdout().contains("pin=42"), "{plan}");
    assert!(!run.stdout().contains("pin=42"), "{run}");
    let finished = run.step_finished();
    assert_eq!(finished["stdout"], "pin=***\n1425\n", "{run}");
}
