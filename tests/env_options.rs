//! Every option also from a `HERD_*` variable: the variable applies when the
//! option is not given, the command line wins, and a bad value exits 2 with
//! a message naming the variable. `herd plan` and `herd hosts` contact no
//! host, so no lab is needed.

mod common;

use common::{write_file, Herd};

const INVENTORY: &str = "\
all:
  hosts:
    host01:
      ansible_host: 127.0.0.2
      tier: first
    host02:
      ansible_host: 127.0.0.3
";

const PLAYBOOK: &str = "\
hosts: all
steps:
  - run: echo hello
";

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "inventory.yml", INVENTORY);
    write_file(dir.path(), "deploy.yml", PLAYBOOK);
    dir
}

fn plan(dir: &tempfile::TempDir) -> Herd {
    Herd::new()
        .current_dir(dir.path())
        .args(["plan", "deploy.yml"])
}

/// The hosts of each batch line of `herd plan`'s output.
fn batches(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|line| line.starts_with("batch "))
        .collect()
}

#[test]
fn herd_limit_selects_the_hosts_of_plan() {
    let dir = workspace();
    let run = plan(&dir).env("HERD_LIMIT", "host02").run();
    run.assert_code(0);
    assert_eq!(batches(run.stdout()), ["batch 1/1: host02"], "{run}");
    assert!(!run.stdout().contains("host01"), "{run}");
}

#[test]
fn the_command_line_wins_over_the_environment() {
    let dir = workspace();
    let run = plan(&dir)
        .env("HERD_LIMIT", "host02")
        .args(["--limit", "host01"])
        .run();
    run.assert_code(0);
    assert_eq!(batches(run.stdout()), ["batch 1/1: host01"], "{run}");

    let run = plan(&dir)
        .env("HERD_BATCH", "bad")
        .args(["--batch", "1"])
        .run();
    run.assert_code(0);
    assert_eq!(
        batches(run.stdout()),
        ["batch 1/2: host01", "batch 2/2: host02"],
        "{run}"
    );
}

#[test]
fn herd_batch_and_inventory_shape_the_plan() {
    let dir = workspace();
    std::fs::rename(
        dir.path().join("inventory.yml"),
        dir.path().join("fleet.yml"),
    )
    .unwrap();
    let run = plan(&dir)
        .env("HERD_INVENTORY", "fleet.yml")
        .env("HERD_BATCH", "1")
        .run();
    run.assert_code(0);
    assert_eq!(
        batches(run.stdout()),
        ["batch 1/2: host01", "batch 2/2: host02"],
        "{run}"
    );
}

#[test]
fn a_bad_herd_batch_exits_2_naming_the_variable() {
    let dir = workspace();
    let run = plan(&dir).env("HERD_BATCH", "bad").run();
    run.assert_code(2);
    assert_eq!(
        run.stderr(),
        "error: invalid value 'bad' for '--batch <BATCH>': invalid batch size `bad`: expected a number or a percentage like 25%\n  \
         note: --batch comes from the environment variable HERD_BATCH\n\
         \n\
         For more information, try '--help'.\n"
    );
    assert_eq!(run.stdout(), "");
}

#[test]
fn the_same_bad_value_on_the_command_line_has_no_note() {
    let dir = workspace();
    let run = plan(&dir).args(["--batch", "bad"]).run();
    run.assert_code(2);
    assert!(
        run.stderr()
            .contains("invalid value 'bad' for '--batch <BATCH>'"),
        "{run}"
    );
    assert!(!run.stderr().contains("HERD_BATCH"), "{run}");
}

#[test]
fn an_input_error_found_after_parsing_names_the_variable_it_came_from() {
    let dir = workspace();
    let run = plan(&dir).env("HERD_LIMIT", "nomatch").run();
    run.assert_code(2);
    assert!(
        run.stderr()
            .starts_with("error: no host or group matches `nomatch`\n"),
        "{run}"
    );
    assert!(
        run.stderr()
            .ends_with("\n  note: --limit comes from the environment variable HERD_LIMIT\n"),
        "{run}"
    );

    let inventory = dir.path().join("inventories");
    std::fs::create_dir(&inventory).unwrap();
    let run = plan(&dir).env("HERD_INVENTORY", &inventory).run();
    run.assert_code(2);
    assert_eq!(
        run.stderr(),
        format!(
            "error: cannot read inventory {}: it is a directory\n  \
             note: --inventory comes from the environment variable HERD_INVENTORY\n",
            inventory.display()
        )
    );

    // Typed on the command line, the same values get no note; nor does a
    // variable the error has nothing to do with.
    let run = plan(&dir)
        .args(["--limit", "nomatch"])
        .env("HERD_LIMIT", "nomatch")
        .env("HERD_BATCH", "50%")
        .run();
    run.assert_code(2);
    assert!(!run.stderr().contains("note:"), "{run}");
}

#[test]
fn an_empty_herd_limit_is_refused_not_taken_as_every_host() {
    let dir = workspace();
    let run = plan(&dir).env("HERD_LIMIT", "").run();
    run.assert_code(2);
    assert!(
        run.stderr().starts_with(
            "error: invalid value '' for '--limit <LIMIT>': the host pattern is empty\n  \
             note: --limit comes from the environment variable HERD_LIMIT\n"
        ),
        "{run}"
    );
    assert_eq!(run.stdout(), "");
}

#[test]
fn a_flag_from_the_environment_takes_true_and_false() {
    let dir = workspace();
    let hosts = || {
        Herd::new()
            .current_dir(dir.path())
            .args(["hosts", "--limit", "host01"])
    };
    for value in ["true", "1", "yes"] {
        let run = hosts().env("HERD_VARS", value).run();
        run.assert_code(0);
        assert!(
            run.stdout().contains("\"tier\": \"first\""),
            "HERD_VARS={value}: {run}"
        );
    }
    for value in ["false", "0", "no"] {
        let run = hosts().env("HERD_VARS", value).run();
        run.assert_code(0);
        assert!(!run.stdout().contains("tier"), "HERD_VARS={value}: {run}");
    }
    let run = hosts().env("HERD_VARS", "maybe").run();
    run.assert_code(2);
    assert!(
        run.stderr().starts_with(
            "error: invalid value 'maybe' for '--vars': value was not a boolean\n  \
             note: --vars comes from the environment variable HERD_VARS\n"
        ),
        "{run}"
    );
}

#[test]
fn a_conflict_caused_by_a_variable_names_it() {
    let dir = workspace();
    let run = Herd::new()
        .current_dir(dir.path())
        .args(["reload", "--no-preload"])
        .env("HERD_PRELOAD", "true")
        .run();
    run.assert_code(2);
    assert!(
        run.stderr().starts_with(
            "error: the argument '--no-preload' cannot be used with '--preload'\n  \
             note: --preload comes from the environment variable HERD_PRELOAD\n"
        ),
        "{run}"
    );
}

#[test]
fn help_names_the_variables_and_hides_values_that_may_be_secret() {
    let run = Herd::new()
        .args(["plan", "--help"])
        .env("HERD_LIMIT", "web")
        .run();
    run.assert_code(0);
    assert!(run.stdout().contains("[env: HERD_LIMIT=web]"), "{run}");
    assert!(run.stdout().contains("[env: HERD_BATCH=]"), "{run}");

    let secret = "http://127.0.0.1:8000/healthz?token=s3cret-t0ken";
    let run = Herd::new()
        .args(["reload", "--help"])
        .env("HERD_HTTP", secret)
        .env("HERD_PREFLIGHT", "check --password s3cret-t0ken")
        .run();
    run.assert_code(0);
    assert!(run.stdout().contains("[env: HERD_HTTP]"), "{run}");
    assert!(run.stdout().contains("[env: HERD_PREFLIGHT]"), "{run}");
    assert!(!run.stdout().contains("s3cret-t0ken"), "{run}");
}

/// `HERD_HTTP` may hold a token (its value is hidden in `--help`): given
/// that way, it is masked in every output, the report file included.
#[test]
fn a_health_check_url_from_the_environment_is_masked_everywhere() {
    let lab = common::Lab::up(1);
    let report = lab.dir().join("report.xml");
    let run = common::Herd::new()
        .args(["reload", "-i"])
        .arg(lab.inventory())
        .args([
            "--pidfile",
            "{{ gunicorn_pidfile }}",
            "--validate-timeout",
            "3s",
            "--output",
            "json",
            "--report",
        ])
        .arg(&report)
        .env(
            "HERD_HTTP",
            "http://127.0.0.1:1/healthz?token=Http5ecretTok",
        )
        .run();
    run.assert_code(1);
    let junit = std::fs::read_to_string(&report).unwrap();
    for (what, text) in [
        ("stdout", run.stdout()),
        ("stderr", run.stderr()),
        ("report", junit.as_str()),
    ] {
        assert!(
            !text.contains("Http5ecretTok"),
            "the token leaked into {what}:\n{text}"
        );
    }
    assert!(run.stdout().contains("***"), "{run}");
}
