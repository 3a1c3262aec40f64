//! A CI's own markers beside the log lines: on GitHub Actions an `::error`
//! per failed host, a `::group::` per batch and the summary table in the
//! job summary file; on GitLab CI a collapsible section per batch; nothing
//! of the kind elsewhere or with `--ci-format none`. A secret a failing
//! step prints reaches none of them.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Herd, Lab, Run};

/// Three hosts in two batches (`host01 host02`, then `host03`); step 2
/// fails on host02 only, printing the secret, and host02 is rolled back.
/// `max_fail: 1` lets batch 2 run.
const FAILS_ON_HOST02: &str = "\
name: Deploy with CI output
hosts: web
rolling:
  batch: 2
  max_fail: 1
steps:
  - name: First mark
    run: touch {{ app_dir }}/step1
  - name: Fail on host02
    run: test {{ inventory_hostname }} != host02 || { echo token {{ api_key }} refused >&2; echo no 100% here >&2; exit 3; }
  - name: Third mark
    run: touch {{ app_dir }}/step3
rollback:
  - name: Note the rollback
    run: touch {{ app_dir }}/rolled-back
";

const SECRET: &str = "S3cr3tT0ken42";

/// The lab inventory with `api_key` a secret.
fn inventory(lab: &Lab) -> PathBuf {
    lab.inventory_with_vars(&format!(
        "    herd_secret_vars: [api_key]\n    api_key: {SECRET}\n"
    ))
}

/// `herd run` of the failing playbook against the lab, with `env` set.
fn failing_run(lab: &Lab, extra: &[&str], env: &[(&str, &Path)]) -> Run {
    let playbook = lab.write("ci.yml", FAILS_ON_HOST02);
    let mut herd = Herd::new()
        .arg("run")
        .arg(&playbook)
        .arg("-i")
        .arg(inventory(lab))
        .args(extra);
    for (key, value) in env {
        herd = herd.env(key, value);
    }
    herd.run()
}

/// The index of the one stderr line equal to `line`.
fn line_at(run: &Run, line: &str) -> usize {
    let found: Vec<usize> = run
        .stderr()
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == line)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(found.len(), 1, "expected the line {line:?} once\n{run}");
    found[0]
}

/// The index of the first stderr line that starts with `start`.
fn line_starting(run: &Run, start: &str) -> usize {
    run.stderr()
        .lines()
        .position(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starts with {start:?}\n{run}"))
}

/// The workflow commands GitHub's runner would act on in herd's output,
/// read as the runner reads it: a line ends at LF or a lone CR, leading
/// blanks are skipped, `::stop-commands::TOKEN` turns every command off
/// until `::TOKEN::`, and the legacy `##[...]` form counts anywhere in a
/// line. herd's own stop and resume are left out.
fn workflow_commands(run: &Run) -> Vec<String> {
    let mut acted = Vec::new();
    let mut stopped: Option<String> = None;
    let text = format!("{}\n{}", run.stdout(), run.stderr());
    for line in text.split(['\n', '\r']).map(str::trim_start) {
        if let Some(token) = &stopped {
            if line == format!("::{token}::") {
                stopped = None;
            }
            continue;
        }
        if let Some(token) = line.strip_prefix("::stop-commands::") {
            stopped = Some(token.to_string());
            continue;
        }
        if line.starts_with("::") || line.contains("##[") {
            acted.push(line.to_string());
        }
    }
    assert!(
        stopped.is_none(),
        "commands are left stopped after the run\n{run}"
    );
    acted
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET),
        "the secret leaked into {what}:\n{text}"
    );
}

#[test]
fn on_github_a_failed_host_is_an_annotation_each_batch_a_group_and_the_table_a_job_summary() {
    let lab = Lab::up(3);
    let summary = lab.dir().join("step-summary.md");
    fs::write(&summary, "# An earlier step's summary\n").unwrap();

    let run = failing_run(
        &lab,
        &[],
        &[
            ("GITHUB_ACTIONS", Path::new("true")),
            ("GITHUB_STEP_SUMMARY", &summary),
        ],
    );

    run.assert_code(1);
    let errors: Vec<String> = workflow_commands(&run)
        .into_iter()
        .filter(|l| l.starts_with("::error"))
        .collect();
    assert_eq!(
        errors,
        [
            "::error title=herd%3A host02::step 2/3 \"Fail on host02\": exited with code 3; rolled back\
             %0Astderr ends with:%0Atoken *** refused%0Ano 100%25 here"
        ],
        "{run}"
    );
    // Each batch's lines inside its group, the annotation in its batch's,
    // the summary table after the last.
    let group1 = line_at(&run, "::group::batch 1/2: host01 host02");
    let group2 = line_at(&run, "::group::batch 2/2: host03");
    let ends: Vec<usize> = run
        .stderr()
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "::endgroup::")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ends.len(), 2, "{run}");
    let annotation = line_starting(&run, "::error");
    let failed_line = line_starting(&run, "host02: [2/3] Fail on host02: FAILED");
    let host03_line = line_starting(&run, "host03: [3/3] Third mark: ok");
    let table = line_starting(&run, "HOST ");
    assert!(group1 < failed_line && failed_line < ends[0], "{run}");
    assert!(group1 < annotation && annotation < ends[0], "{run}");
    assert!(
        ends[0] < group2 && group2 < host03_line && host03_line < ends[1],
        "{run}"
    );
    assert!(ends[1] < table, "{run}");
    assert!(
        run.stderr().contains("host02:     token *** refused"),
        "{run}"
    );

    let markdown = fs::read_to_string(&summary).unwrap();
    assert!(
        markdown.starts_with(
            "# An earlier step's summary\n\n### herd: Deploy with CI output\n\n\
             **the rollout failed** (exit code 1): 3 host(s) in "
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains("| Host | Result | Steps | Master | Workers | Duration | Note |\n"),
        "{markdown}"
    );
    for (host, start, end) in [
        ("host01", "| host01 | done | 3/3 | - | - | ", "s |  |"),
        (
            "host02",
            "| host02 | rolled back | 1/3 | - | - | ",
            "s | step 2 \"Fail on host02\": exited with code 3; rollback ok |",
        ),
        ("host03", "| host03 | done | 3/3 | - | - | ", "s |  |"),
    ] {
        let row = markdown
            .lines()
            .find(|l| l.starts_with(&format!("| {host} ")))
            .unwrap_or_else(|| panic!("no row for {host}\n{markdown}"));
        assert!(row.starts_with(start) && row.ends_with(end), "{row}");
    }
    assert!(
        markdown.contains(
            "**host02**: step 2 \"Fail on host02\" failed (exit code 3), stderr ends with:\n\n\
             ```text\ntoken *** refused\nno 100% here\n```\n"
        ),
        "{markdown}"
    );
    assert_no_secret("stdout", run.stdout());
    assert_no_secret("stderr", run.stderr());
    assert_no_secret("the job summary", &markdown);
}

#[test]
fn on_gitlab_each_batch_is_a_collapsed_section() {
    let lab = Lab::up(3);

    let run = failing_run(&lab, &[], &[("GITLAB_CI", Path::new("true"))]);

    run.assert_code(1);
    let marker = |text: &str| {
        run.stderr()
            .lines()
            .position(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no {text:?}\n{run}"))
    };
    let starts: Vec<&str> = run
        .stderr()
        .lines()
        .filter(|l| l.contains("section_start:"))
        .collect();
    assert_eq!(starts.len(), 2, "{run}");
    for (start, (batch, header)) in starts
        .iter()
        .zip([(1, "batch 1/2: host01 host02"), (2, "batch 2/2: host03")])
    {
        let rest = start
            .strip_prefix("\u{1b}[0Ksection_start:")
            .unwrap_or_else(|| panic!("{start:?}"));
        let (time, rest) = rest.split_once(':').unwrap();
        assert!(time.parse::<u64>().is_ok(), "{start:?}");
        assert_eq!(
            rest,
            format!("herd_batch_{batch}[collapsed=true]\r\u{1b}[0K{header}")
        );
    }
    let ends: Vec<&str> = run
        .stderr()
        .lines()
        .filter(|l| l.contains("section_end:"))
        .collect();
    assert_eq!(ends.len(), 2, "{run}");
    for (end, batch) in ends.iter().zip([1, 2]) {
        assert!(
            end.starts_with("\u{1b}[0Ksection_end:")
                && end.ends_with(&format!(":herd_batch_{batch}\r\u{1b}[0K")),
            "{end:?}"
        );
    }
    let failed_line = marker("host02: [2/3] Fail on host02: FAILED");
    assert!(
        marker("herd_batch_1[collapsed") < failed_line
            && failed_line < marker("section_end:")
            && marker(":herd_batch_2\r") < marker("HOST "),
        "{run}"
    );
    assert!(workflow_commands(&run).is_empty(), "{run}");
    assert_no_secret("stderr", run.stderr());
}

#[test]
fn elsewhere_or_with_ci_format_none_nothing_is_added() {
    let lab = Lab::up(3);
    let summary = lab.dir().join("step-summary.md");

    let plain = failing_run(&lab, &[], &[]);
    let none = failing_run(
        &lab,
        &["--ci-format", "none"],
        &[
            ("GITHUB_ACTIONS", Path::new("true")),
            ("GITHUB_STEP_SUMMARY", &summary),
        ],
    );

    for run in [&plain, &none] {
        run.assert_code(1);
        assert!(workflow_commands(run).is_empty(), "{run}");
        assert!(!run.stderr().contains("section_"), "{run}");
        assert!(!run.stderr().contains('\u{1b}'), "{run}");
        assert!(run.stderr().contains("batch 1/2: host01 host02\n"), "{run}");
        assert_eq!(run.summary_result("host02"), "rolled back", "{run}");
    }
    assert!(!summary.exists(), "--ci-format none wrote the job summary");
}

#[test]
fn a_job_summary_that_cannot_be_written_is_a_warning_and_the_run_stands() {
    let lab = Lab::up(1);
    let playbook = lab.write(
        "ok.yml",
        "name: All fine\nhosts: web\nsteps:\n  - run: \"true\"\n",
    );
    let herd = || {
        Herd::new()
            .args(["run", "--ci-format", "github"])
            .arg(&playbook)
            .arg("-i")
            .arg(lab.inventory())
    };
    // A directory cannot be appended to.
    let directory = lab.dir().join("summary-dir");
    fs::create_dir(&directory).unwrap();

    let unset = herd().run();
    let unwritable = herd().env("GITHUB_STEP_SUMMARY", &directory).run();

    unset.assert_code(0);
    assert!(
        unset
            .stderr()
            .contains("herd: warning: GITHUB_STEP_SUMMARY is not set: no job summary written\n"),
        "{unset}"
    );
    unwritable.assert_code(0);
    let warning = format!(
        "herd: warning: cannot append the job summary to {} (GITHUB_STEP_SUMMARY): ",
        directory.display()
    );
    assert!(unwritable.stderr().contains(&warning), "{unwritable}");
    for run in [&unset, &unwritable] {
        assert_eq!(
            workflow_commands(run),
            ["::group::batch 1/1: host01", "::endgroup::"],
            "{run}"
        );
        assert_eq!(run.summary_result("host01"), "done", "{run}");
    }
}

/// A host's output that looks like workflow commands, at the start of a
/// line, after a CR, indented in the closing summary, or in the legacy
/// `##[...]` form anywhere: GitHub acts on none of it, only on herd's own.
#[test]
fn on_github_no_host_output_is_taken_for_a_workflow_command() {
    let lab = Lab::up(1);
    let playbook = lab.write(
        "inject.yml",
        "name: Inject\nhosts: web\nsteps:\n  - run: printf '::error::forged\\n::add-mask::host01\\nx\\r::warning::after a CR\\n##[error]legacy\\n::stop-commands::abc\\n' >&2; exit 3\n",
    );
    let run = Herd::new()
        .arg("run")
        .arg(&playbook)
        .arg("-i")
        .arg(lab.inventory())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", lab.dir().join("summary.md"))
        .run();
    run.assert_code(1);
    // The forged lines are in the log, as text.
    assert!(run.stderr().contains("::error::forged"), "{run}");
    let acted = workflow_commands(&run);
    assert_eq!(acted.len(), 4, "{acted:#?}\n{run}");
    assert!(acted[0].starts_with("::group::batch 1/1"), "{acted:#?}");
    // herd's own annotation quotes the forged lines as text (after a CR,
    // what a terminal keeps), escaped onto one line.
    assert!(
        acted[1].starts_with("::error title=herd%3A host01::step 1/1")
            && acted[1].contains("%0A::error::forged%0A::add-mask::host01%0A::warning::after a CR"),
        "{acted:#?}"
    );
    assert_eq!(acted[2], "::endgroup::");
    assert!(
        acted[3].starts_with("::error title=herd::rollout aborted"),
        "{acted:#?}"
    );
}
