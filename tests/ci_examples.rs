//! The CI examples in examples/ci work: each parses as YAML, has what makes
//! it safe (no two deploys at once, the JUnit report kept, a manual
//! rollback, credentials from secrets), and herd accepts every `herd`
//! command line in it, expanded by a real shell with sample values: the
//! subcommand parses the line, every `HERD_*` variable the job sets is one
//! herd reads, and `herd plan` of the line's playbook against
//! examples/ci/inventory.yml passes (it contacts nothing).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use yaml_serde::Value;

use common::{repo, write_file, Herd};

/// Variables herd reads for credentials rather than as an option's value.
const CREDENTIALS: [&str; 3] = [
    "HERD_SSH_KEY",
    "HERD_SSH_KEY_PASSPHRASE",
    "HERD_KNOWN_HOSTS",
];

/// What the CI system sets, as sample values for the shell.
const CI_SAMPLES: [(&str, &str); 3] = [
    ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
    ("CI_COMMIT_SHA", "0123456789abcdef0123456789abcdef01234567"),
    ("ROLLBACK_TO", "fedcba9876543210fedcba9876543210fedcba98"),
];

type Env = BTreeMap<String, String>;

/// A script of the example (`run:` or `script:`) with the environment its job gives it.
struct Script {
    text: String,
    env: Env,
}

fn load(name: &str) -> Value {
    let path = repo().join("examples/ci").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    yaml_serde::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A mapping of variables (`env:`, `variables:`) added to `env`.
fn add_vars(env: &mut Env, vars: Option<&Value>) {
    let Some(vars) = vars.and_then(Value::as_mapping) else {
        return;
    };
    for (key, value) in vars {
        let key = key.as_str().expect("a variable's name is a string");
        env.insert(key.to_string(), text(Some(value)).unwrap_or_default());
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Sequence(items)) => items.iter().filter_map(|item| text(Some(item))).collect(),
        Some(other) => text(Some(other)).into_iter().collect(),
        None => Vec::new(),
    }
}

fn github_scripts(doc: &Value) -> Vec<Script> {
    let mut scripts = Vec::new();
    let mut top = Env::new();
    add_vars(&mut top, doc.get("env"));
    for (_, job) in doc["jobs"].as_mapping().expect("jobs") {
        let mut job_env = top.clone();
        add_vars(&mut job_env, job.get("env"));
        for step in job["steps"].as_sequence().expect("steps") {
            let mut env = job_env.clone();
            add_vars(&mut env, step.get("env"));
            if let Some(text) = text(step.get("run")) {
                scripts.push(Script { text, env });
            }
        }
    }
    scripts
}

fn gitlab_scripts(doc: &Value) -> Vec<Script> {
    let mut scripts = Vec::new();
    let mut top = Env::new();
    add_vars(&mut top, doc.get("variables"));
    for (name, job) in doc.as_mapping().expect("a mapping") {
        let name = name.as_str().unwrap();
        if name.starts_with('.') || job.get("script").is_none() {
            continue;
        }
        // The job, after the template it extends.
        let layers: Vec<&Value> = strings(job.get("extends"))
            .iter()
            .map(|template| &doc[template.as_str()])
            .chain([job])
            .collect();
        let mut env = top.clone();
        for layer in &layers {
            add_vars(&mut env, layer.get("variables"));
        }
        for key in ["before_script", "script", "after_script"] {
            let Some(lines) = layers.iter().rev().find_map(|layer| layer.get(key)) else {
                continue;
            };
            for text in strings(Some(lines)) {
                scripts.push(Script {
                    text,
                    env: env.clone(),
                });
            }
        }
    }
    scripts
}

/// The lines of a script that run herd (`herd ...` or `path/to/herd ...`).
fn herd_lines(script: &str) -> Vec<String> {
    script
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|line| {
            let first = line.split_whitespace().next().unwrap_or("");
            first == "herd" || first.ends_with("/herd")
        })
        .map(String::from)
        .collect()
}

/// `${{ ... }}` (a GitHub expression, not shell) as a sample value.
fn without_expressions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("an expression ends") + start + 2;
        out.push_str("sample");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The arguments herd gets from `line` (its first word is herd), as `sh -u`
/// expands them with the job's environment and the CI's sample values.
fn arguments(line: &str, env: &Env, scratch: &Path) -> Vec<String> {
    let shim = write_file(
        scratch,
        "herd-args",
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$HERD_ARGS_OUT\"\n",
    );
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let line = without_expressions(line);
    let rest = line
        .split_once(char::is_whitespace)
        .map_or("", |(_, rest)| rest);
    let out = scratch.join("args");
    let status = std::process::Command::new("/bin/sh")
        .arg("-u")
        .arg("-c")
        .arg(format!("'{}' {rest}", shim.display()))
        .envs(
            env.iter()
                .map(|(key, value)| (key, without_expressions(value))),
        )
        .envs(CI_SAMPLES)
        .env("HERD_ARGS_OUT", &out)
        .status()
        .unwrap();
    assert!(status.success(), "the shell cannot expand `{line}`");
    let bytes = std::fs::read(&out).unwrap();
    bytes
        .split(|byte| *byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8(arg.to_vec()).unwrap())
        .collect()
}

/// Whether `arg` is the short form (`-i`) of the option `variable` stands for.
fn short_of(arg: &str, options: &BTreeMap<String, (String, bool)>, variable: &str) -> bool {
    let short = |long: &str| match long {
        "--inventory" => Some("-i"),
        "--limit" => Some("-l"),
        "--extra-vars" => Some("-e"),
        "--ssh-config" => Some("-F"),
        "--forks" => Some("-f"),
        _ => None,
    };
    options
        .get(variable)
        .and_then(|(long, _)| short(long))
        .is_some_and(|short| arg.starts_with(short))
}

/// From a subcommand's `--help`: each variable, the long option it stands
/// for, and whether that option takes a value (`--lock-wait <LOCK_WAIT>`).
fn env_options(help: &str) -> BTreeMap<String, (String, bool)> {
    let mut options = BTreeMap::new();
    let mut option: Option<(String, bool)> = None;
    for line in help.lines().map(str::trim) {
        if line.starts_with('-') {
            let long = line.split_whitespace().find(|word| word.starts_with("--"));
            option = long.map(|long| (long.trim_end_matches(',').to_string(), line.contains(" <")));
        }
        if let (Some(at), Some(option)) = (line.find("[env: "), &option) {
            let variable = line[at + 6..].split(['=', ']']).next().unwrap();
            options.insert(variable.to_string(), option.clone());
        }
    }
    options
}

/// Whether herd accepts the command line `args` (after `herd`) run with `env`.
fn accepts(args: &[String], env: &Env) -> Result<(), String> {
    let home = tempfile::tempdir().unwrap();
    // `--help` last: clap parses every argument before it and its value,
    // then prints the help instead of running.
    let parse = Herd::new()
        .current_dir(repo())
        .env("HOME", home.path())
        .args(args)
        .arg("--help")
        .run();
    if parse.code() != 0 {
        return Err(format!("herd refuses {args:?}:\n{}", parse.stderr()));
    }
    // Each variable's value, given as its option, must parse too.
    let options = env_options(parse.stdout());
    let mut with_env = args.to_vec();
    for (variable, value) in env.iter().filter(|(key, _)| key.starts_with("HERD_")) {
        if CREDENTIALS.contains(&variable.as_str()) {
            continue;
        }
        let Some((long, takes_value)) = options.get(variable) else {
            return Err(format!("`herd {}` reads no variable {variable}", args[0]));
        };
        let on_line = args.iter().any(|arg| {
            arg == long || arg.starts_with(&format!("{long}=")) || short_of(arg, &options, variable)
        });
        if *takes_value && !on_line {
            with_env.push(format!("{long}={}", without_expressions(value)));
        }
    }
    let parse_env = Herd::new()
        .current_dir(repo())
        .env("HOME", home.path())
        .args(&with_env)
        .arg("--help")
        .run();
    if parse_env.code() != 0 {
        return Err(format!(
            "herd refuses the job's variables as {with_env:?}:\n{}",
            parse_env.stderr()
        ));
    }

    let (Some(command), Some(playbook)) = (args.first(), args.get(1)) else {
        return Err(format!("no subcommand and playbook in {args:?}"));
    };
    if !["run", "rollback", "plan"].contains(&command.as_str()) {
        return Err(format!("`herd {command}` has no playbook to plan"));
    }
    // The same playbook and the line's options that `herd plan` has.
    let mut plan_args = vec!["plan".to_string(), playbook.clone()];
    let mut rest = args[2..].iter();
    let mut rollback_to = "previous".to_string();
    while let Some(arg) = rest.next() {
        let name = arg.split('=').next().unwrap();
        if name == "--to" {
            let to = match arg.split_once('=') {
                Some((_, to)) => Some(to.to_string()),
                None => rest.clone().next().cloned(),
            };
            rollback_to = to.unwrap_or_default();
        }
        let planned = [
            "-e",
            "--extra-vars",
            "-l",
            "--limit",
            "--batch",
            "-i",
            "--inventory",
        ];
        let takes_value = parse.stdout().contains(&format!("{name} <"));
        if planned.contains(&name) {
            plan_args.push(arg.clone());
            if !arg.contains('=') {
                plan_args.extend(rest.next().cloned());
            }
        } else if takes_value && !arg.contains('=') {
            rest.next();
        }
    }
    if command == "rollback" {
        // What `herd rollback` does: `release` is the target release.
        plan_args.push(format!("--extra-vars=release={rollback_to}"));
    }
    let mut plan = Herd::new()
        .current_dir(repo())
        .env("HOME", home.path())
        .args(&plan_args);
    for (key, value) in env {
        if key.starts_with("HERD_") && !CREDENTIALS.contains(&key.as_str()) {
            plan = plan.env(key, without_expressions(value));
        }
    }
    let run = plan.run();
    if run.code() != 0 || !run.stdout().contains("batch 1/") {
        return Err(format!("herd {plan_args:?} fails:\n{run}"));
    }
    Ok(())
}

/// Checks every herd line of `scripts`; returns the subcommands seen.
fn check_herd_lines(file: &str, scripts: &[Script]) -> Vec<String> {
    let scratch = tempfile::tempdir().unwrap();
    let mut commands = Vec::new();
    for script in scripts {
        for line in herd_lines(&script.text) {
            let args = arguments(&line, &script.env, scratch.path());
            if let Err(why) = accepts(&args, &script.env) {
                panic!("{file}: `{line}`: {why}");
            }
            commands.push(args[0].clone());
        }
    }
    commands
}

#[test]
fn github_actions_example_is_safe_and_herd_accepts_its_command_lines() {
    let doc = load("github-actions.yml");
    let branches = strings(doc["on"]["push"].get("branches"));
    assert_eq!(branches, ["main"]);
    assert!(doc["on"].get("workflow_dispatch").is_some());
    assert!(text(doc["concurrency"].get("group")).is_some());
    assert_eq!(doc["concurrency"]["cancel-in-progress"], Value::Bool(false));
    // The credentials reach the steps that run herd, and no other (a
    // build's code never sees them).
    for (name, job) in doc["jobs"].as_mapping().unwrap() {
        for step in job["steps"].as_sequence().unwrap() {
            let runs_herd = !herd_lines(&text(step.get("run")).unwrap_or_default()).is_empty();
            for secret in ["HERD_SSH_KEY", "HERD_KNOWN_HOSTS"] {
                let value = step.get("env").and_then(|env| text(env.get(secret)));
                let expected = runs_herd.then(|| format!("${{{{ secrets.{secret} }}}}"));
                assert_eq!(value, expected, "{name:?}: {step:?}");
            }
        }
    }
    assert!(doc["env"].get("HERD_SSH_KEY").is_none());
    let report = text(doc["env"].get("HERD_REPORT")).expect("HERD_REPORT");
    for (name, job) in doc["jobs"].as_mapping().unwrap() {
        let uploads: Vec<&Value> = job["steps"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|step| {
                text(step.get("uses"))
                    .is_some_and(|uses| uses.starts_with("actions/upload-artifact@"))
            })
            .collect();
        assert_eq!(uploads.len(), 1, "{name:?} uploads the report once");
        assert_eq!(text(uploads[0].get("if")).as_deref(), Some("always()"));
        assert_eq!(text(uploads[0]["with"].get("path")), Some(report.clone()));
    }
    let rollback = &doc["jobs"]["rollback"];
    assert_eq!(
        text(rollback.get("if")).as_deref(),
        Some("github.event_name == 'workflow_dispatch' && github.ref == 'refs/heads/main'")
    );
    // Deploys and rollbacks wait in groups of their own: GitHub keeps one
    // waiting run per group, and a push must not drop a rollback.
    assert!(text(doc["concurrency"].get("group"))
        .is_some_and(|group| group.contains("${{ github.event_name }}")));

    let commands = check_herd_lines("github-actions.yml", &github_scripts(&doc));
    assert_eq!(commands, ["run", "rollback", "rollback"]);
}

#[test]
fn gitlab_ci_example_is_safe_and_herd_accepts_its_command_lines() {
    let doc = load("gitlab-ci.yml");
    let template = &doc[".herd"];
    // The credentials are scoped to the environment: the build has none.
    assert_eq!(
        text(template.get("environment")).as_deref(),
        Some("production")
    );
    assert!(doc["build-herd"].get("environment").is_none());
    assert_eq!(strings(template.get("needs")), ["build-herd"]);
    for job in ["deploy", "rollback"] {
        assert_eq!(strings(doc[job].get("extends")), [".herd"], "{job}");
    }
    assert_eq!(
        text(template.get("resource_group")).as_deref(),
        Some("production")
    );
    let report = text(doc["variables"].get("HERD_REPORT")).expect("HERD_REPORT");
    assert_eq!(
        text(template["artifacts"].get("when")).as_deref(),
        Some("always")
    );
    assert_eq!(
        text(template["artifacts"]["reports"].get("junit")),
        Some(report)
    );
    let rule = &doc["rollback"]["rules"][0];
    assert_eq!(text(rule.get("when")).as_deref(), Some("manual"));
    assert_eq!(rule["allow_failure"], Value::Bool(true));

    let commands = check_herd_lines("gitlab-ci.yml", &gitlab_scripts(&doc));
    assert_eq!(commands, ["run", "rollback", "rollback"]);
}

#[test]
fn a_typo_in_a_herd_line_is_caught() {
    let scratch = tempfile::tempdir().unwrap();
    let env = Env::from([(
        "HERD_INVENTORY".to_string(),
        "examples/ci/inventory.yml".to_string(),
    )]);
    let line = |line: &str| arguments(line, &env, scratch.path());

    let good = line("herd run examples/ci/deploy.yml -e release=\"$GITHUB_SHA\" --lock-wait 5m");
    assert_eq!(accepts(&good, &env), Ok(()));

    let flag = line("herd run examples/ci/deploy.yml --lock-wiat 5m");
    let why = accepts(&flag, &env).unwrap_err();
    assert!(why.contains("unexpected argument '--lock-wiat'"), "{why}");

    let value = line("herd rollback examples/ci/deploy.yml --lock-wait soon");
    let why = accepts(&value, &env).unwrap_err();
    assert!(
        why.contains("invalid value 'soon' for '--lock-wait"),
        "{why}"
    );

    let playbook = line("herd run examples/ci/deploy.yaml");
    assert!(accepts(&playbook, &env).is_err());

    let mut bad_value = env.clone();
    bad_value.insert("HERD_LOCK_WAIT".into(), "10 minutes".into());
    let why = accepts(&good[..2], &bad_value).unwrap_err();
    assert!(
        why.contains("invalid value '10 minutes' for '--lock-wait"),
        "{why}"
    );

    let mut misnamed = env.clone();
    misnamed.insert("HERD_LOCK_WIAT".into(), "5m".into());
    let why = accepts(&good, &misnamed).unwrap_err();
    assert_eq!(why, "`herd run` reads no variable HERD_LOCK_WIAT");
}

#[test]
fn herd_lines_are_found_in_scripts() {
    let script = "cargo build\nif [ -n \"$X\" ]; then\n  ./target/release/herd rollback p.yml \\\n    --to \"$X\"\nfi\nherd plan p.yml\necho herd\n";
    assert_eq!(
        herd_lines(script),
        [
            "./target/release/herd rollback p.yml      --to \"$X\"",
            "herd plan p.yml"
        ]
    );
}
