//! Secrets never reach what herd prints: its own messages quote templates in
//! their display form, secret mappings and booleans are masked leaf by leaf,
//! `herd_secret_vars` adds up across levels, and a step's output is masked
//! by what the step was given made from secrets.

mod common;

use std::fs;
use std::path::Path;

use common::{plan_and_json_run, Lab, Run};

const SECRETS: &str =
    "    herd_secret_vars: [api_key, pin]\n    pin: \"7\"\n    api_key: \"Sup3r'Secret\"\n";

/// Fails the test if any form of the lab secrets appears in `text`.
fn assert_no_secret(what: &str, text: &str) {
    for leaked in [
        "Sup3r", "SUP3R", "Secret", "p=7", "pin=7", "hunter22", "bob",
    ] {
        assert!(
            !text.contains(leaked),
            "`{leaked}` leaked into {what}:\n{text}"
        );
    }
}

/// Runs `playbook` twice: plainly with a JUnit report, and with
/// `--output json`; returns both runs and the report.
fn plain_and_json_run(lab: &Lab, inventory: &Path, playbook: &Path) -> (Run, Run, String) {
    let report = lab.dir().join("junit.xml");
    let plain = common::Herd::new()
        .args(["run", "-i"])
        .arg(inventory)
        .arg(playbook)
        .arg("--report")
        .arg(&report)
        .run();
    let json = common::Herd::new()
        .args(["run", "--output", "json", "-i"])
        .arg(inventory)
        .arg(playbook)
        .run();
    let junit = fs::read_to_string(&report).expect("the report is written");
    (plain, json, junit)
}

/// Fails the test if any of `leaks` appears in what the runs printed or
/// in the report.
fn assert_none_in(plain: &Run, json: &Run, junit: &str, leaks: &[&str]) {
    for (what, text) in [
        ("stderr", plain.stderr()),
        ("stdout", plain.stdout()),
        ("json", json.stdout()),
        ("json stderr", json.stderr()),
        ("the JUnit report", junit),
    ] {
        assert_no_secret(what, text);
        for leaked in leaks {
            assert!(
                !text.contains(leaked),
                "`{leaked}` leaked into {what}:\n{text}"
            );
        }
    }
}

/// The `step_finished` event of step `step` of a `--output json` run.
fn finished(run: &Run, step: u64) -> serde_json::Value {
    run.json_events()
        .into_iter()
        .find(|e| e["event"] == "step_finished" && e["step"] == step)
        .unwrap_or_else(|| panic!("step {step} finished\n{run}"))
}

#[test]
fn a_short_secret_in_a_health_check_url_never_appears_in_herds_messages() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars(SECRETS);
    let playbook = lab.write(
        "url.yml",
        "hosts: web\nsteps:\n  - run: \"true\"\nreload:\n  pidfile: \"{{ gunicorn_pidfile }}\"\n  start: \"{{ app_start }}\"\nvalidate:\n  timeout: 8s\n  http: { url: \"http://127.0.0.2:{{ http_port }}/nope?token={{ api_key }}&p={{ pin }}\" }\n",
    );

    let (plain, json, junit) = plain_and_json_run(&lab, &inventory, &playbook);

    plain.assert_code(1);
    json.assert_code(1);
    let port = lab.host("host01").http_port;
    let shown = format!("proof `http`: http://127.0.0.2:{port}/nope?token=***&p=***: status 404");
    assert!(plain.stderr().contains(&shown), "{plain}");
    assert!(junit.contains("token=***&amp;p=***: status 404"), "{junit}");
    assert!(
        json.stdout().contains("token=***&p=***: status 404"),
        "{json}"
    );
    assert_none_in(&plain, &json, &junit, &[]);
}

#[test]
fn a_secret_mapping_or_boolean_is_masked_leaf_by_leaf() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars(
        "    herd_secret_vars: [creds, flag]\n    creds: {user: bob, pass: hunter22, n: 9}\n    flag: true\n",
    );
    let playbook = lab.write(
        "creds.yml",
        "hosts: web\nsteps:\n  - name: Use the creds\n    run: echo pass={{ creds.pass }} n={{ creds.n }} flag={{ flag }} user={{ creds.user }} all={{ creds }}\n",
    );

    let (plan, run) = plan_and_json_run(&inventory, &playbook);

    plan.assert_code(0);
    run.assert_code(0);
    assert!(
        plan.stdout().contains(
            r#"echo pass='***' n='***' flag='***' user='***' all='{"n": "***", "pass": "***", "user": "***"}'"#
        ),
        "{plan}"
    );
    let finished = run.step_finished();
    assert_eq!(
        finished["stdout"], "pass=*** n=*** flag=*** user=*** all=***\n",
        "{run}"
    );
    for (what, text) in [
        ("plan", plan.stdout()),
        ("run", run.stdout()),
        ("run stderr", run.stderr()),
    ] {
        assert_no_secret(what, text);
        assert!(
            !text.contains("True"),
            "the flag leaked into {what}:\n{text}"
        );
    }
}

#[test]
fn herd_secret_vars_given_with_dash_e_adds_to_the_inventorys() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars(SECRETS);
    let playbook = lab.write(
        "tok.yml",
        "hosts: web\nsteps:\n  - name: Use them\n    run: echo pin={{ pin }} tok={{ tok }}\n",
    );

    let run = common::Herd::new()
        .args(["run", "--output", "json", "-e", "herd_secret_vars=tok"])
        .args(["-e", "tok=tok-value", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .run();
    let odd = common::Herd::new()
        .args(["run", "-e", "herd_secret_vars=[tok]", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .run();

    run.assert_code(0);
    let finished = run.step_finished();
    assert_eq!(finished["stdout"], "pin=*** tok=***\n", "{run}");
    assert_no_secret("run", run.stdout());
    assert!(!run.stdout().contains("tok-value"), "{run}");
    odd.assert_code(2);
    assert_eq!(
        odd.stderr(),
        "error: -e herd_secret_vars=[tok]: herd_secret_vars: `[tok]` is not a valid variable name\n",
        "{odd}"
    );
    assert!(lab.hosts_with_lock_file().is_empty(), "{odd}");
}

#[test]
fn a_step_output_is_masked_by_what_the_step_was_given_from_secrets() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars(SECRETS);
    let playbook = lab.write(
        "upper.yml",
        "hosts: web\nsteps:\n  - name: Shout\n    run: echo key-upper={{ api_key | upper }} pinword=7; echo {{ api_key | lower }} >&2; exit 3\n",
    );
    let report = lab.dir().join("junit.xml");

    let run = common::Herd::new()
        .args(["run", "--output", "json", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .arg("--report")
        .arg(&report)
        .run();

    run.assert_code(1);
    let finished = run.step_finished();
    assert_eq!(finished["stdout"], "key-upper=*** pinword=7\n", "{run}");
    assert_eq!(finished["stderr"], "***\n", "{run}");
    let junit = fs::read_to_string(&report).expect("the report is written");
    for (what, text) in [
        ("json", run.stdout()),
        ("stderr", run.stderr()),
        ("the JUnit report", &junit),
    ] {
        assert_no_secret(what, text);
        assert!(
            !text.contains("sup3r"),
            "the key leaked into {what}:\n{text}"
        );
    }
}

#[test]
fn a_captured_output_holding_a_secret_feeds_later_steps_and_is_shown_masked() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars(SECRETS);
    let playbook = lab.write(
        "capture.yml",
        "hosts: web\nsteps:\n  - run: printf '%s\\n' {{ api_key }}\n    capture: key\n  - run: test {{ key }} = {{ api_key }} && echo same && printf '%s\\n' {{ key }}\n",
    );

    let run = common::Herd::new()
        .args(["run", "--output", "json", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .run();

    // The later step got the real value (the test in it held), and what
    // it printed of it is masked.
    run.assert_code(0);
    assert_eq!(finished(&run, 2)["stdout"], "same\n***\n", "{run}");
    assert_no_secret("stdout", run.stdout());
    assert_no_secret("stderr", run.stderr());
}

#[test]
fn a_capture_into_a_secret_name_is_secret_from_the_step_that_captured_it_on() {
    let lab = Lab::up(1);
    let inventory =
        lab.inventory_with_vars("    herd_secret_vars: [db_pass, pin]\n    pin: \"7\"\n");
    // The values come from the host: the playbook never holds them whole.
    let playbook = lab.write(
        "capture-secret.yml",
        "hosts: web\nsteps:\n  - run: printf '%s%s\\n' fetched-Pa55 word\n    capture: db_pass\n  - run: printf '%s%s\\n' rotated-Pin 0\n    capture: pin\n  - run: echo using={{ db_pass }} pin={{ pin }}; printf '%s%s %s%s\\n' fetched-Pa55 word rotated-Pin 0 >&2; exit 1\n",
    );

    let (plain, json, junit) = plain_and_json_run(&lab, &inventory, &playbook);

    plain.assert_code(1);
    json.assert_code(1);
    assert_eq!(finished(&json, 1)["stdout"], "***\n", "{json}");
    assert_eq!(finished(&json, 2)["stdout"], "***\n", "{json}");
    assert_eq!(
        finished(&json, 3)["stdout"],
        "using=*** pin=***\n",
        "{json}"
    );
    assert_eq!(finished(&json, 3)["stderr"], "*** ***\n", "{json}");
    assert_none_in(&plain, &json, &junit, &["Pa55word", "Pin0"]);
}

#[test]
fn a_short_secret_passed_on_through_a_capture_stays_masked() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars("    herd_secret_vars: [pin]\n    pin: \"42\"\n");
    let playbook = lab.write(
        "capture-pin.yml",
        "hosts: web\nsteps:\n  - run: echo {{ pin }}\n    capture: c\n  - run: echo got {{ c }} >&2; exit 1\n",
    );

    let (plain, json, junit) = plain_and_json_run(&lab, &inventory, &playbook);

    plain.assert_code(1);
    json.assert_code(1);
    assert_eq!(finished(&json, 1)["stdout"], "***\n", "{json}");
    assert_eq!(finished(&json, 2)["stderr"], "got ***\n", "{json}");
    assert!(plain.stderr().contains("got ***"), "{plain}");
    assert_none_in(&plain, &json, &junit, &["got 42", "42\n"]);
}

#[test]
fn a_secret_cut_by_the_output_limit_leaves_no_piece_behind() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars(SECRETS);
    // 8 MiB are kept of each stream: the secret is cut after `Sup3r'Se`.
    let playbook = lab.write(
        "cap.yml",
        "hosts: web\nsteps:\n  - run: head -c 8388600 /dev/zero | tr '\\0' '\\n' >&2; printf '%s\\n' {{ api_key }} >&2; exit 1\n",
    );

    let (plain, json, junit) = plain_and_json_run(&lab, &inventory, &playbook);

    plain.assert_code(1);
    json.assert_code(1);
    let stderr = finished(&json, 1)["stderr"].as_str().map(str::to_string);
    assert!(
        stderr.as_deref().is_some_and(|s| s.ends_with("\n***")),
        "{:?}",
        stderr.map(|s| s[s.len() - 20..].to_string())
    );
    assert_none_in(&plain, &json, &junit, &["Sup3r'S"]);
}

#[test]
fn a_health_check_body_is_masked_before_it_is_cut() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars(SECRETS);
    // The new release answers `ok ` and 110 `x`, then the secret: herd
    // quotes 120 characters of a body, which end inside the secret.
    let playbook = lab.write(
        "body.yml",
        r#"hosts: web
steps:
  - run: |
      mkdir -p {{ app_dir }}/releases/v9
      cp {{ app_dir }}/releases/v1/app.py {{ app_dir }}/releases/v9/
      { head -c 110 /dev/zero | tr '\0' x; printf '%s\n' {{ api_key }}; } > {{ app_dir }}/releases/v9/RELEASE
      ln -sfn releases/v9 {{ app_dir }}/current.next && mv -T {{ app_dir }}/current.next {{ app_dir }}/current
reload:
  pidfile: "{{ gunicorn_pidfile }}"
validate:
  timeout: 5s
  http: { url: "http://{{ ansible_host }}:{{ http_port }}/healthz", status: 200, contains: v9 }
"#,
    );

    let (plain, json, junit) = plain_and_json_run(&lab, &inventory, &playbook);

    plain.assert_code(1);
    json.assert_code(1);
    let body = format!("`ok {}***`", "x".repeat(110));
    assert!(plain.stderr().contains(&body), "{plain}");
    assert!(json.stdout().contains(&body), "{json}");
    assert_none_in(&plain, &json, &junit, &["xSup", "xS"]);
}

#[test]
fn a_secret_written_in_a_step_name_is_masked_in_every_report_of_it() {
    let lab = Lab::up(2);
    let inventory = lab.inventory_with_vars(SECRETS);
    // host01 fails the named step; host02 waits for it as a `once` step
    // and reports it too.
    let playbook = lab.write(
        "named.yml",
        "hosts: web\nsteps:\n  - name: \"rotate Sup3r'Secret\"\n    run: exit 3\n    once: true\n",
    );

    let (plain, json, junit) = plain_and_json_run(&lab, &inventory, &playbook);

    plain.assert_code(1);
    json.assert_code(1);
    assert!(plain.stderr().contains("\"rotate ***\""), "{plain}");
    assert_none_in(&plain, &json, &junit, &[]);
}

/// Two hosts that are never contacted, with secrets of every length: their
/// own, declared for all hosts or for one group.
const FLEET: &str = "all:
  vars: {herd_secret_vars: [tok, short]}
  children:
    web: {hosts: {web1: {tok: WEB1TOKEN}}}
    db:
      vars: {herd_secret_vars: [dbpass, pin, tok]}
      hosts: {db1: {dbpass: DBSECRETXYZ, pin: 987654321, short: ab}}
";

/// Fails the test if a value of [`FLEET`] (or `ENVSECRET123`, `EXTRASECRET`) is in `text`.
fn assert_no_fleet_secret(what: &str, text: &str) {
    for leaked in [
        "WEB1TOKEN",
        "DBSECRETXYZ",
        "987654321",
        "'ab'",
        "\"ab\"",
        "ENVSECRET123",
        "EXTRASECRET",
    ] {
        assert!(
            !text.contains(leaked),
            "`{leaked}` leaked into {what}:\n{text}"
        );
    }
}

#[test]
fn a_template_error_before_the_run_never_shows_a_secret_of_any_host() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = common::write_file(dir.path(), "inv.yml", FLEET);
    let include = "tried to include non-existing template \"***\"";
    let cases = [
        (
            "  - run: echo {% include hostvars['db1'].dbpass %}\n",
            include,
        ),
        (
            "  - run: \"echo {{ 'x' | indent(**{tok: 1}) }}\"\n",
            "unknown keyword argument '***'",
        ),
        (
            "  - run: echo {{ hostvars['db1'].pin ** 99 }}\n",
            "unable to calculate *** ** 99",
        ),
        ("  - run: echo {% include env.MYTOKEN %}\n", include),
        (
            "  - run: \"echo {{ 'x' | indent(**{hostvars['db1'].short: 1}) }}\"\n",
            "unknown keyword argument '***'",
        ),
        (
            "  - run: echo hi\n    when: \"'x' | indent(**{hostvars['db1'].short: 1}) == 'x'\"\n",
            "unknown keyword argument '***'",
        ),
        (
            "  - run: echo hi\n    cwd: \"{% include hostvars['db1'].dbpass %}\"\n",
            include,
        ),
        (
            "  - run: echo hi\n    env: {X: \"{% include env.MYTOKEN %}\"}\n",
            include,
        ),
        (
            "  - upload: {src: inv.yml, dest: \"/tmp/{{ hostvars['db1'].pin ** 99 }}\"}\n",
            "unable to calculate *** ** 99",
        ),
        (
            "  - run: echo hi\nreload: {pidfile: \"{% include hostvars['db1'].dbpass %}\"}\n",
            include,
        ),
    ];
    for (steps, expected) in cases {
        let text = format!("hosts: all\nsteps:\n{steps}");
        let playbook = common::write_file(dir.path(), "p.yml", &text);
        for command in ["plan", "run"] {
            let run = common::Herd::new()
                .args([command, "-i"])
                .arg(&inventory)
                .arg(&playbook)
                .env("MYTOKEN", "ENVSECRET123")
                .run();
            run.assert_code(2);
            assert!(
                run.stderr().contains(expected),
                "herd {command} with\n{text}\nsaid {run}"
            );
            assert_no_fleet_secret(&format!("herd {command} with\n{text}"), run.stderr());
            assert_no_fleet_secret(&format!("herd {command} with\n{text}"), run.stdout());
        }
    }
}

#[test]
fn herd_plan_shows_the_reload_with_every_secret_masked_hostvars_and_dash_e_included() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = common::write_file(dir.path(), "inv.yml", FLEET);
    for (reload, expected) in [
        (
            "{pidfile: \"/run/{{ hostvars['db1'].dbpass }}-{{ hostvars[inventory_hostname].tok }}.pid\"}",
            "/run/***-***.pid",
        ),
        ("{name: \"{{ hostvars['db1'].tok2 }}\"}", "named ***"),
        ("{unit: \"{{ hostvars['db1'].dbpass }}.service\"}", "***.service"),
        ("{container: \"{{ hostvars['web1'].tok }}\"}", "***"),
    ] {
        let text = format!("hosts: web\nsteps:\n  - run: echo hi\nreload: {reload}\n");
        let playbook = common::write_file(dir.path(), "p.yml", &text);
        let plan = common::Herd::new()
            .args(["plan", "-i"])
            .arg(&inventory)
            .arg(&playbook)
            .args(["-e", "tok2=EXTRASECRET", "-e", "herd_secret_vars=tok2"])
            .run();
        plan.assert_code(0);
        let lines: Vec<&str> = plan
            .stdout()
            .lines()
            .filter(|l| l.trim_start().starts_with("reload:"))
            .collect();
        assert_eq!(lines.len(), 1, "{plan}");
        assert!(lines[0].contains(expected), "{reload}: {}", lines[0]);
        assert_no_fleet_secret(&format!("herd plan with {reload}"), plan.stdout());
    }
}

#[test]
fn herd_plan_masks_a_secret_in_a_step_name_also_where_the_name_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = common::write_file(dir.path(), "inv.yml", FLEET);
    // The second step's label is its command's first 48 characters: the
    // cut leaves `WEB1` of the secret.
    let playbook = common::write_file(
        dir.path(),
        "p.yml",
        &format!(
            "hosts: web\nsteps:\n  - name: rotate WEB1TOKEN now\n    run: echo hi\n  - run: echo {} WEB1TOKEN\n  - name: x WEB1TOKEN\n    run: echo\n    when: inventory_hostname == 'db1'\n",
            "a".repeat(38)
        ),
    );
    let plan = common::Herd::new()
        .args(["plan", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .run();
    plan.assert_code(0);
    let out = plan.stdout();
    assert!(out.contains("step 3. x ***: when"), "{plan}");
    assert!(out.contains("    1. rotate *** now\n"), "{plan}");
    assert!(
        out.contains(&format!("    2. echo {} ***…\n", "a".repeat(38))),
        "{plan}"
    );
    assert!(
        out.contains("    3. x *** (skipped: when is false)\n"),
        "{plan}"
    );
    // The command, where the playbook wrote the secret out, masks it too.
    assert!(
        out.contains(&format!("       echo {} ***\n", "a".repeat(38))),
        "{plan}"
    );
    assert!(!out.contains("WEB1"), "{plan}");
}

#[test]
fn herd_plan_masks_a_secret_the_playbook_writes_out_in_a_command_or_the_reload() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = common::write_file(dir.path(), "inv.yml", FLEET);
    let playbook = common::write_file(
        dir.path(),
        "p.yml",
        "hosts: all\nsteps:\n  - run: |\n      curl -H 'X-Token: WEB1TOKEN' https://example.invalid/\n      echo \"$(printf %s DBSECRETXYZ)\"\nreload: {pidfile: /run/DBSECRETXYZ.pid}\n",
    );
    let plan = common::Herd::new()
        .args(["plan", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .env("MYTOKEN", "ENVSECRET123")
        .run();
    plan.assert_code(0);
    let out = plan.stdout();
    assert!(
        out.contains("       curl -H 'X-Token: ***' https://example.invalid/\n"),
        "{plan}"
    );
    assert!(out.contains("       echo \"$(printf %s ***)\"\n"), "{plan}");
    assert!(out.contains("/run/***.pid"), "{plan}");
    assert_no_fleet_secret("herd plan", out);
}

#[test]
fn a_play_vars_template_error_never_shows_the_hosts_secret() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = common::write_file(dir.path(), "inv.yml", FLEET);
    let playbook = common::write_file(
        dir.path(),
        "p.yml",
        "hosts: db\nvars: {x: \"{% include dbpass %}\"}\nsteps:\n  - run: echo hi\n",
    );
    let plan = common::Herd::new()
        .args(["plan", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .run();
    plan.assert_code(2);
    assert!(
        plan.stderr().contains(
            "error: template error: tried to include non-existing template \"***\" in vars.x"
        ),
        "{plan}"
    );
    assert_no_fleet_secret("herd plan", plan.stderr());
}

/// Every process's command line on this machine (the lab's hosts are
/// local), joined.
fn command_lines() -> String {
    let mut all = String::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(bytes) = fs::read(entry.path().join("cmdline")) {
            all.push_str(&String::from_utf8_lossy(&bytes).replace('\0', " "));
            all.push('\n');
        }
    }
    all
}

/// Runs `playbook` (`--output json`) while watching every command line on
/// the machine for `secret` until the step's `sleep 2` is over; returns the
/// run, and fails the test if the secret was seen or the step never was
/// (`marks`: texts of the step's own command lines).
fn run_watching_command_lines(
    inventory: &Path,
    playbook: &Path,
    secret: &str,
    marks: &[&str],
) -> Run {
    let running = common::Herd::new()
        .args(["run", "--output", "json", "-i"])
        .arg(inventory)
        .arg(playbook)
        .spawn();
    let mut seen = false;
    let mut looked = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(1800) {
        let lines = command_lines();
        if marks.iter().any(|mark| lines.contains(mark)) {
            looked += 1;
        }
        seen |= lines.contains(secret);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = running.wait();
    run.assert_code(0);
    assert!(looked > 0, "the step was never seen running\n{run}");
    assert!(!seen, "the secret was on a command line\n{run}");
    run
}

#[test]
fn a_become_step_holding_a_secret_keeps_it_off_every_command_line() {
    let lab = Lab::up(1);
    let inventory = lab.inventory_with_vars("    herd_secret_vars: [tok]\n    tok: Wh1sperXYZ\n");
    // The secret is in the command; `cat` gets no input; the exit code and
    // the output come back as for any step.
    let playbook = lab.write(
        "become.yml",
        "hosts: web\nsteps:\n  - name: Rotate\n    run: |\n      sleep 2\n      id -un\n      test {{ tok }} = Wh1sperXYZ && echo same\n      cat\n      exit 3\n    become: true\n    become_user: herd-lab-app\n    ignore_errors: true\n",
    );

    let run =
        run_watching_command_lines(&inventory, &playbook, "Wh1sperXYZ", &["sleep 2", "sudo -n"]);
    let step = finished(&run, 1);
    assert_eq!(step["exit_code"], 3, "{run}");
    assert_eq!(step["stdout"], "herd-lab-app\nsame\n", "{run}");
}

#[test]
fn commands_in_sessions_of_their_own_keep_secrets_off_command_lines_too() {
    let lab = Lab::up(1);
    let host = lab.host("host01");
    // This host's sshd refuses herd's long-lived shell (`exec /bin/sh`), so
    // every command runs in a session of its own.
    let host_dir = host.app_dir.parent().unwrap().to_path_buf();
    let gate = host_dir.join("gate.sh");
    fs::write(
        &gate,
        "#!/bin/sh\ncase \"$SSH_ORIGINAL_COMMAND\" in\n  'exec /bin/sh') echo 'no shell for you' >&2; exit 1;;\n  *) exec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\";;\nesac\n",
    )
    .unwrap();
    fs::set_permissions(&gate, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = host_dir.join("sshd_config");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(&config, format!("{text}ForceCommand {}\n", gate.display())).unwrap();
    host.kill_sshd();
    common::wait_until(std::time::Duration::from_secs(10), || !host.ssh_listening());
    let started = std::process::Command::new("/usr/sbin/sshd")
        .arg("-f")
        .arg(&config)
        .status()
        .expect("sshd starts");
    assert!(started.success());
    assert!(common::wait_until(
        std::time::Duration::from_secs(10),
        || host.ssh_listening()
    ));
    let inventory =
        lab.inventory_with_vars("    herd_secret_vars: [tok]\n    tok: Sess10nSECRET\n");
    let playbook = lab.write(
        "session.yml",
        "hosts: web\nsteps:\n  - name: Use it\n    run: |\n      sleep 2\n      test {{ tok }} = Sess10nSECRET && echo same\n      cat\n      exit 4\n    env: {T: \"{{ tok }}\"}\n    ignore_errors: true\n",
    );

    let run =
        run_watching_command_lines(&inventory, &playbook, "Sess10nSECRET", &["sleep 2", "eval"]);
    let step = finished(&run, 1);
    assert_eq!(step["exit_code"], 4, "{run}");
    assert_eq!(step["stdout"], "same\n", "{run}");
}

#[test]
fn herd_plan_shows_a_become_step_using_a_captured_secret_in_the_form_it_runs_in() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = common::write_file(
        dir.path(),
        "inv.yml",
        "all:\n  vars: {herd_secret_vars: [tok2]}\n  hosts: {web1: {ansible_host: 127.0.0.9}}\n",
    );
    let playbook = common::write_file(
        dir.path(),
        "p.yml",
        "hosts: all\nsteps:\n  - run: cat token\n    capture: tok2\n  - run: rotate {{ tok2 }}\n    become: true\n  - run: rotate plain\n    become: true\n",
    );
    let plan = common::Herd::new()
        .args(["plan", "-i"])
        .arg(&inventory)
        .arg(&playbook)
        .run();
    plan.assert_code(0);
    assert!(
        plan.stdout().contains(
            "       printf '%s\\n' 'rotate '\\''***'\\''' | sudo -n -H -u root -- /bin/sh -c 'eval \"$(cat)\"'\n"
        ),
        "{plan}"
    );
    assert!(
        plan.stdout()
            .contains("       sudo -n -H -u root -- /bin/sh -c 'rotate plain'\n"),
        "{plan}"
    );
}
