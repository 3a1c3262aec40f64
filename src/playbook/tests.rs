use super::*;

fn parse(text: &str) -> Result<Playbook, SourceError> {
    Playbook::parse(Path::new("deploy.yml"), text)
}

#[test]
fn parses_the_design_example_shape() {
    let text = r#"
name: Release
hosts: web
vars:
  venv: "{{ app_dir }}/venv"
rolling:
  batch: [1, "25%", "100%"]
  max_fail: 0
  pause: 5s
steps:
  - name: Remember
    run: readlink -f {{ app_dir }}/current
    capture: previous
  - run: echo hi
    cwd: /tmp
    env: { A: "1" }
    timeout: 5m
    once: true
  - upload: { src: files/settings.py, dest: "/srv/x.py", mode: "0640" }
reload:
  server: gunicorn
  pidfile: /run/app.pid
  preflight: "true"
  start: systemctl start app
validate:
  timeout: 60s
  http: { url: "http://127.0.0.1:8000/healthz", status: 200, contains: "{{ release }}" }
rollback:
  - run: ln -sfn {{ previous }} current
"#;
    let playbook = parse(text).unwrap();
    assert_eq!(playbook.spec.steps.len(), 3);
    assert_eq!(
        playbook.spec.rolling.batch.as_ref().unwrap().cut(12),
        vec![1, 3, 8]
    );
    assert_eq!(playbook.spec.steps[1].timeout.unwrap().0.as_secs(), 300);
    assert_eq!(playbook.spec.rollback.len(), 1);
}

#[test]
fn unknown_key_in_a_step_is_pinned() {
    let text = "hosts: web\nsteps:\n  - run: echo hi\n    cwdd: /tmp\n";
    let error = parse(text).unwrap_err();
    assert_eq!(
        error.to_string(),
        "steps[0]: unknown key `cwdd`, expected one of `name`, `run`, `upload`, `archive`, `cwd`, `env`, `timeout`, `become`, `become_user`, `once`, `capture`, `ignore_errors`, `local`, `when`\n  --> deploy.yml:4:5\n  |\n4 |     cwdd: /tmp\n  |     ^"
    );
}

#[test]
fn wrong_type_is_pinned() {
    let text = "hosts: web\nrolling:\n  pause: soon\n";
    let error = parse(text).unwrap_err();
    assert_eq!(
        error.to_string(),
        "rolling.pause: invalid duration `soon`: expected a number with a unit, like 30s, 5m or 1h\n  --> deploy.yml:3:10\n  |\n3 |   pause: soon\n  |          ^"
    );
}

#[test]
fn an_archive_is_an_action_of_its_own_and_its_mode_is_checked() {
    let text = "hosts: web\nsteps:\n  - upload: { src: a, dest: b }\n    archive: { src: a.tar, dest: b }\n";
    let error = parse(text).unwrap_err();
    assert_eq!(
        error.message,
        "a step in `steps` has both `upload` and `archive`: split it in two"
    );
    assert_eq!((error.location.line, error.location.column), (3, 5));

    let text = "hosts: web\nsteps:\n  - archive: { src: a.tar, dest: b, mode: \"rwx\" }\n";
    let error = parse(text).unwrap_err();
    assert_eq!(
        error.message,
        "archive mode `rwx` is not an octal mode like \"0644\""
    );
    assert_eq!((error.location.line, error.location.column), (3, 43));

    let text = "hosts: web\nsteps:\n  - archive: { src: a.tar, dest: /srv/app }\n";
    let playbook = parse(text).unwrap();
    assert_eq!(playbook.spec.steps[0].label(0), "archive /srv/app");
}

#[test]
fn a_step_without_an_action_points_at_it() {
    let text = "hosts: web\nsteps:\n  - run: a\n  - name: nothing\n    cwd: /\n";
    let error = parse(text).unwrap_err();
    assert_eq!(
        error.message,
        "a step in `steps` needs `run`, `upload` or `archive`"
    );
    assert_eq!((error.location.line, error.location.column), (4, 5));
}

#[test]
fn broken_yaml_points_at_the_fault() {
    let error = parse("hosts: web\nsteps: [\n").unwrap_err();
    assert_eq!(error.location.line, 3);
    assert!(error.to_string().contains("deploy.yml:3:"), "{error}");
}

#[test]
fn steps_can_share_settings_through_merge_keys() {
    let text = "hosts: web\nsteps:\n  - &app\n    run: make\n    cwd: /srv/app\n    env: { MODE: prod }\n  - <<: *app\n    run: make test\n";
    let playbook = parse(text).unwrap();
    let second = &playbook.spec.steps[1];
    assert_eq!(second.run.as_deref(), Some("make test"));
    assert_eq!(second.cwd.as_deref(), Some("/srv/app"));
    assert_eq!(second.env["MODE"], "prod");
}

#[test]
fn reserved_names_are_refused_in_vars_and_capture() {
    let error = parse("hosts: web\nvars:\n  a: 1\n  env: prod\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "`env` is a name herd sets itself: call the variable something else\n  --> deploy.yml:4:3\n  |\n4 |   env: prod\n  |   ^"
    );
    let error = parse("hosts: web\nsteps:\n  - run: hostname\n    capture: inventory_hostname\n")
        .unwrap_err();
    assert_eq!((error.location.line, error.location.column), (4, 14));
    assert!(error.message.contains("a name herd sets itself"), "{error}");
}

#[test]
fn usr2_under_unit_is_refused() {
    let text = "hosts: web\nreload:\n  unit: app.service\n  signal: USR2\n";
    let error = parse(text).unwrap_err();
    assert!(error.message.contains("cannot be used with `unit`"));
    assert_eq!(error.location.line, 4);
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Pieces of playbooks, to build inputs that get past the YAML parser.
    fn fragment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "hosts: web\n",
            "steps:\n",
            "  - run: echo {{ x }}\n",
            "  - upload: { src: a, dest: b, mode: \"0999\" }\n",
            "    archive: { src: a.tar.gz, dest: b, mode: \"0750\" }\n",
            "    capture: 1bad\n",
            "    once: true\n",
            "rollback:\n",
            "rolling:\n",
            "  batch: [1, \"25%\"]\n",
            "  batch: 0\n",
            "  max_fail: \"150%\"\n",
            "  pause: 5 parsecs\n",
            "reload:\n",
            "  signal: USR2\n",
            "  unit: a\n",
            "  pidfile: p\n",
            "validate:\n",
            "  http: { url: u }\n",
            "{",
            "[",
            ": ",
            "- ",
            "\t",
            "'",
            "\"",
            "\n",
            "    ",
            "  ",
            "&a ",
            "*a\n",
            "!!str ",
            "{{",
            "}}",
            "%",
            "é",
            "\u{0}",
        ])
    }

    proptest! {
        #[test]
        fn arbitrary_text(text in ".{0,300}") {
            let _ = Playbook::parse(Path::new("p.yml"), &text).map(|p| p.spec.steps.len());
        }

        #[test]
        fn playbook_shaped_text(parts in prop::collection::vec(fragment(), 0..40)) {
            let text: String = parts.concat();
            if let Err(error) = Playbook::parse(Path::new("p.yml"), &text) {
                // Every error points inside the file.
                prop_assert!(error.location.line <= text.lines().count().max(1) + 1);
                let _ = error.to_string();
            }
        }
    }
}

#[test]
fn a_local_step_cannot_upload_or_become() {
    let text = "hosts: web\nsteps:\n  - upload: { src: a, dest: /b }\n    local: true\n";
    assert_eq!(
        parse(text).unwrap_err().to_string(),
        "a `local` step runs on the controller: it cannot have `upload`\n  --> deploy.yml:4:12\n  |\n4 |     local: true\n  |            ^"
    );
    let text = "hosts: web\nrollback:\n  - run: id\n    become: true\n    local: true\n";
    assert_eq!(
        parse(text).unwrap_err().to_string(),
        "a `local` step runs on the controller: it cannot have `become`\n  --> deploy.yml:5:12\n  |\n5 |     local: true\n  |            ^"
    );
}

#[test]
fn unknown_and_empty_hooks_are_pinned() {
    let text = "hosts: web\nhooks:\n  before_bach: echo hi\n";
    assert_eq!(
        parse(text).unwrap_err().to_string(),
        "hooks: unknown key `before_bach`, expected one of `before_batch`, `after_batch`, `on_success`, `on_failure`, `timeout`\n  --> deploy.yml:3:3\n  |\n3 |   before_bach: echo hi\n  |   ^"
    );
    let text = "hosts: web\nhooks:\n  on_failure: \"\"\n";
    assert_eq!(
        parse(text).unwrap_err().to_string(),
        "hook `on_failure` is empty: give it a command or leave it out\n  --> deploy.yml:3:15\n  |\n3 |   on_failure: \"\"\n  |               ^"
    );
}

#[test]
fn a_literal_server_or_signal_is_refused_at_load_a_template_later() {
    let error = parse("hosts: web\nreload:\n  server: gunicron\n").unwrap_err();
    assert!(
        error
            .message
            .starts_with("unknown server `gunicron`: herd reloads "),
        "{error}"
    );
    assert_eq!((error.location.line, error.location.column), (3, 11));
    let error = parse("hosts: web\nreload:\n  signal: TERM\n").unwrap_err();
    assert!(error.message.ends_with("not `TERM`"), "{error}");
    assert_eq!((error.location.line, error.location.column), (3, 11));
    // Each host's own, checked when the plan is built.
    for text in [
        "hosts: web\nreload:\n  server: \"{{ app_server }}\"\n  signal: TERM\n",
        "hosts: web\nreload:\n  signal: \"{{ app_signal }}\"\n  unit: app.service\n",
    ] {
        parse(text).unwrap();
    }
}
