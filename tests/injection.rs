//! Values interpolated into shell commands are shell-quoted: an inventory
//! variable or an `-e` value reaches the shell as data, never as code (unless
//! the playbook says `| raw`).

mod common;

use std::fs;
use std::path::PathBuf;

use common::{unique, Lab, Run};

/// A file in /tmp (where the lab's login user may write) that exists only if
/// the injected command ran; removed when dropped.
struct Canary(PathBuf);

impl Canary {
    fn new(tag: &str) -> Canary {
        let canary = Canary(PathBuf::from(format!("/tmp/{}", unique(tag))));
        assert!(!canary.0.exists());
        canary
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn exists(&self) -> bool {
        self.0.exists()
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Adds `line` under the lab inventory's `all: vars:`, by editing the text.
fn add_all_var(lab: &Lab, line: &str) {
    let text = fs::read_to_string(lab.inventory()).unwrap();
    assert!(
        text.contains("all:\n  vars:\n"),
        "unexpected lab inventory:\n{text}"
    );
    let text = text.replacen(
        "all:\n  vars:\n",
        &format!("all:\n  vars:\n    {line}\n"),
        1,
    );
    fs::write(lab.inventory(), text).unwrap();
}

/// stdout of every `step_finished` event of the run, per host.
fn step_outputs(run: &Run) -> Vec<(String, String)> {
    run.json_events()
        .into_iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| {
            (
                e["host"].as_str().unwrap().to_string(),
                e["stdout"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const ECHO_EVIL: &str = "\
name: Echo a variable
hosts: web
steps:
  - name: Echo it
    run: echo {{ evil }}
";

#[test]
fn an_inventory_variable_reaches_the_shell_as_data() {
    let lab = Lab::up(2);
    let canary = Canary::new("herd-inject");
    let payload = format!("; touch {}", canary.path());
    add_all_var(&lab, &format!("evil: \"{payload}\""));
    let playbook = lab.write("echo.yml", ECHO_EVIL);

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--output", "json"])
        .run();

    run.assert_code(0);
    assert!(
        !canary.exists(),
        "the inventory variable ran as shell code\n{run}"
    );
    assert_both_hosts_echoed(&run, &payload);
}

#[test]
fn the_same_variable_marked_raw_does_reach_the_shell_as_code() {
    // The control for the test above: proves the canary would have caught an
    // injection, and that `| raw` is the documented way out of quoting.
    let lab = Lab::up(1);
    let canary = Canary::new("herd-inject-raw");
    add_all_var(&lab, &format!("evil: \"; touch {}\"", canary.path()));
    let playbook = lab.write(
        "echo.yml",
        &ECHO_EVIL.replace("{{ evil }}", "{{ evil | raw }}"),
    );

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(0);
    assert!(canary.exists(), "`| raw` value did not run as shell\n{run}");
}

#[test]
fn an_extra_var_with_command_substitution_reaches_the_shell_as_data() {
    let lab = Lab::up(2);
    let canary = Canary::new("herd-inject-e");
    let payload = format!("$(touch {})`touch {}`", canary.path(), canary.path());
    let playbook = lab.write("echo.yml", &ECHO_EVIL.replace("evil", "payload"));

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-e", &format!("payload={payload}"), "--output", "json"])
        .run();

    run.assert_code(0);
    assert!(!canary.exists(), "the -e value ran as shell code\n{run}");
    assert_both_hosts_echoed(&run, &payload);
}

/// Both hosts' step printed exactly `payload`: it reached the shell as data.
fn assert_both_hosts_echoed(run: &Run, payload: &str) {
    let outputs = step_outputs(run);
    assert_eq!(outputs.len(), 2, "{run}");
    for (host, stdout) in outputs {
        assert_eq!(
            stdout.trim_end(),
            payload,
            "{host} echoed something else\n{run}"
        );
    }
}

/// Logins host01's sshd has accepted so far.
fn logins(lab: &Lab) -> usize {
    fs::read_to_string(lab.sshd_log("host01"))
        .unwrap_or_default()
        .matches("Accepted publickey")
        .count()
}

/// Payloads that each try to run `touch CANARY` from wherever a value lands.
fn payloads(canary: &str) -> Vec<String> {
    vec![
        format!("$(touch {canary})"),
        format!("`touch {canary}`"),
        format!("\"; touch {canary}; \""),
        format!("'; touch {canary}; '"),
        format!("\\'; touch {canary}; \\'"),
        format!("\\\"$(touch {canary})\\\""),
        format!("line one\ntouch {canary}"),
        format!("; touch {canary}"),
        format!("$'\\'; touch {canary}; '"),
        format!("{{{{ x }}}} %s \\n \\\\ * ~ !{canary}"),
    ]
}

#[test]
fn payloads_reach_run_env_and_cwd_byte_exact_and_run_nothing() {
    let lab = Lab::up(1);
    let canary = Canary::new("herd-inject-payloads");
    let payloads = payloads(canary.path());
    let mut playbook = String::from("hosts: web\nsteps:\n");
    let mut args: Vec<String> = vec!["run".into()];
    for (i, payload) in payloads.iter().enumerate() {
        // As an argument; through a step's `env`; and in a cwd's name.
        playbook.push_str(&format!(
            "  - run: printf '%s' {{{{ p{i} }}}} > {{{{ app_dir }}}}/arg{i}\n\
             \x20 - run: printf '%s' \"$V\" > {{{{ app_dir }}}}/env{i}\n\
             \x20   env: {{ V: \"{{{{ p{i} }}}}\" }}\n\
             \x20 - run: mkdir -p {{{{ app_dir }}}}/dirs/{{{{ p{i} }}}} && cd {{{{ app_dir }}}}/dirs/{{{{ p{i} }}}} && pwd > {{{{ app_dir }}}}/cwd{i}\n\
             \x20 - run: printf '%s' {{{{ p{i} }}}} > cwd-seen{i}\n\
             \x20   cwd: \"{{{{ app_dir }}}}\"\n"
        ));
        args.push("-e".into());
        args.push(format!("p{i}={payload}"));
    }
    let playbook = lab.write("payloads.yml", &playbook);

    let run = lab.herd(&args).arg(&playbook).run();

    run.assert_code(0);
    assert!(!canary.exists(), "a payload ran as shell code\n{run}");
    let app = lab.app_dir("host01");
    for (i, payload) in payloads.iter().enumerate() {
        for file in [format!("arg{i}"), format!("env{i}"), format!("cwd-seen{i}")] {
            let arrived = fs::read(app.join(&file)).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&arrived),
                payload.as_str(),
                "{file}\n{run}"
            );
        }
        let cwd = fs::read_to_string(app.join(format!("cwd{i}"))).unwrap();
        assert_eq!(
            cwd.strip_suffix('\n').unwrap(),
            app.join("dirs").join(payload).to_str().unwrap(),
            "cwd{i}\n{run}"
        );
    }
}

#[test]
fn a_template_inside_quotes_is_refused_before_any_host() {
    let lab = Lab::up(1);
    let canary = Canary::new("herd-inject-quoted");
    let before = logins(&lab);
    for quoted in ["echo \"value = {{ x }}\"", "echo 'value = {{ x }}'"] {
        let playbook = lab.write(
            "quoted.yml",
            &format!("hosts: web\nsteps:\n  - name: Echo\n    run: {quoted}\n"),
        );

        let run = lab
            .herd(["run"])
            .arg(&playbook)
            .args(["-e", &format!("x=$(touch {})", canary.path())])
            .run();

        run.assert_code(2);
        let which = if quoted.contains('"') {
            "double"
        } else {
            "single"
        };
        let line = format!("    run: {quoted}");
        let column = line.find("{{").unwrap() + 1;
        let caret = " ".repeat(column - 1);
        assert_eq!(
            run.stderr(),
            format!(
                "\
error: run of steps[0]: `{{{{ x }}}}` is inside {which} quotes, where a value could run as shell code; herd quotes values for you: remove the quotes
  --> {}:4:{column}
  |
4 | {line}
  | {caret}^
",
                playbook.display()
            )
        );
    }
    assert!(!canary.exists());
    assert_eq!(logins(&lab), before, "a host was contacted");
}

#[test]
fn a_raw_template_inside_quotes_is_the_users_choice() {
    let lab = Lab::up(1);
    let playbook = lab.write(
        "raw-quoted.yml",
        "hosts: web\nsteps:\n  - run: printf '%s' \"{{ x | raw }}\" > {{ app_dir }}/raw\n",
    );

    let run = lab.herd(["run"]).arg(&playbook).args(["-e", "x=a b"]).run();

    run.assert_code(0);
    assert_eq!(
        fs::read_to_string(lab.app_dir("host01").join("raw")).unwrap(),
        "a b"
    );
}

#[test]
fn an_env_key_that_is_not_a_shell_name_is_refused_before_any_host() {
    let lab = Lab::up(1);
    let canary = Canary::new("herd-inject-env-key");
    let before = logins(&lab);
    let playbook = lab.write(
        "env-key.yml",
        &format!(
            "hosts: web\nsteps:\n  - run: \"true\"\n    env:\n      OK: yes\n      \"A=1; touch {}; B\": x\n",
            canary.path()
        ),
    );

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(2);
    let stderr = run.stderr();
    assert!(
        stderr.starts_with(&format!(
            "error: env key `A=1; touch {}; B` is not a shell variable name: use letters, digits and _, not starting with a digit\n  --> {}:6:7\n",
            canary.path(),
            playbook.display()
        )),
        "{run}"
    );
    assert!(!canary.exists());
    assert_eq!(logins(&lab), before, "a host was contacted");
}

#[test]
fn safe_does_not_turn_quoting_off_and_autoescape_false_does_not_either() {
    let lab = Lab::up(1);
    let canary = Canary::new("herd-inject-safe");
    let payload = format!("; touch {}", canary.path());
    let safe = lab.write(
        "safe.yml",
        "hosts: web\nsteps:\n  - run: echo {{ x | safe }}\n",
    );
    let autoescape = lab.write(
        "autoescape.yml",
        "hosts: web\nsteps:\n  - run: \"{% autoescape false %}printf '%s' {{ x }} > {{ app_dir }}/auto{% endautoescape %}\"\n",
    );

    let refused = lab
        .herd(["run"])
        .arg(&safe)
        .args(["-e", &format!("x={payload}")])
        .run();
    let quoted = lab
        .herd(["run"])
        .arg(&autoescape)
        .args(["-e", &format!("x={payload}")])
        .run();

    refused.assert_code(2);
    assert!(
        refused.stderr().starts_with(&format!(
            "error: template error: `| safe` does not turn off herd's shell quoting: write `| raw` to insert a value unquoted in run of steps[0] on host host01\n  --> {}:3:",
            safe.display()
        )),
        "{refused}"
    );
    quoted.assert_code(0);
    assert!(!canary.exists(), "{quoted}");
    assert_eq!(
        fs::read_to_string(lab.app_dir("host01").join("auto")).unwrap(),
        payload
    );
}

#[test]
fn an_exec_command_with_a_template_inside_quotes_is_refused() {
    let lab = Lab::up(1);
    let before = logins(&lab);

    let run = lab
        .herd(["exec"])
        .args(["--", "echo \"{{ inventory_hostname }}\""])
        .run();

    run.assert_code(2);
    assert_eq!(
        run.stderr(),
        "\
error: `{{ inventory_hostname }}` is inside double quotes, where a value could run as shell code; herd quotes values for you: remove the quotes
  --> command:1:7
  |
1 | echo \"{{ inventory_hostname }}\"
  |       ^
"
    );
    assert_eq!(logins(&lab), before, "a host was contacted");
}

/// Runs `template` (lines of a `run: |` block) with the inventory variables
/// `y: "$(touch CANARY)"`, `x: "a\ntouch CANARY #"` and
/// `w: "a[$(touch CANARY)]"` (for bash arithmetic), and checks that herd
/// refuses it before any host, with an error that starts `head` at `line:column`.
fn assert_refused_before_any_host(tag: &str, template: &str, head: &str, at: (usize, usize)) {
    let lab = Lab::up(1);
    let canary = Canary::new(tag);
    add_all_var(&lab, &format!("y: \"$(touch {})\"", canary.path()));
    add_all_var(&lab, &format!("x: \"a\\ntouch {} #\"", canary.path()));
    add_all_var(&lab, &format!("w: \"a[$(touch {})]\"", canary.path()));
    let mut playbook = String::from("hosts: web\nsteps:\n  - name: Moved\n    run: |\n");
    for line in template.lines() {
        playbook.push_str(&format!("      {line}\n"));
    }
    let playbook = lab.write("moved.yml", &playbook);
    let before = logins(&lab);

    let run = lab.herd(["run"]).arg(&playbook).run();

    run.assert_code(2);
    let expected = format!(
        "error: {head}\n  --> {}:{}:{}\n",
        playbook.display(),
        at.0,
        at.1
    );
    assert!(
        run.stderr().starts_with(&expected),
        "expected {expected}\n{run}"
    );
    assert!(!canary.exists(), "the value ran as shell code\n{run}");
    assert_eq!(logins(&lab), before, "a host was contacted");
}

/// What herd says when only the rendered command shows a value in `place`.
fn lands(place: &str) -> String {
    format!(
        "run of steps[0] on host host01: a value lands inside {place} once the template is rendered, \
         where it could run as shell code; herd quotes values for you: remove the quotes"
    )
}

#[test]
fn a_quote_from_one_branch_of_an_if_is_seen_where_it_lands() {
    assert_refused_before_any_host(
        "herd-moved-if",
        "{% if true %}\"{% else %}\"{% endif %}{{ y }}\"",
        &lands("double quotes"),
        (5, 7),
    );
}

#[test]
fn a_quote_repeated_by_a_loop_is_seen_where_it_lands() {
    assert_refused_before_any_host(
        "herd-moved-for",
        "{% for i in [1,2] %}{{ y }}\"{% endfor %}",
        &lands("double quotes"),
        (5, 7),
    );
}

#[test]
fn a_case_pattern_does_not_end_a_command_substitution() {
    assert_refused_before_any_host(
        "herd-moved-case",
        "echo \"$(case a in a) echo \"{{ y }}\";; esac)\"",
        "run of steps[0]: `{{ y }}` is inside double quotes, where a value could run as shell code; \
         herd quotes values for you: remove the quotes",
        (5, 34),
    );
}

#[test]
fn a_quote_printed_by_a_macro_is_seen_where_it_lands() {
    assert_refused_before_any_host(
        "herd-moved-macro",
        // The `"` in the `if false` balances the one in the macro in the text.
        "{% macro q() %}\"{% endmacro %}{% if false %}\"{% endif %}echo {{ q() }}{{ y }}{{ q() }}",
        &lands("double quotes"),
        (5, 7),
    );
}

#[test]
fn a_quote_from_a_set_block_is_seen_where_it_lands() {
    assert_refused_before_any_host(
        "herd-moved-set",
        "{% set q %}\"{% endset %}{% if false %}\"{% endif %}echo {{ q }}{{ y }}{{ q }}",
        &lands("double quotes"),
        (5, 7),
    );
}

#[test]
fn whitespace_control_that_moves_a_value_into_a_comment_is_seen() {
    assert_refused_before_any_host(
        "herd-moved-comment",
        "echo a # note\n{%- if true %} {{ x }}{% endif %}",
        "run of steps[0] on host host01: a value lands inside a shell comment once the template is rendered, \
         which a newline in the value would end: move it out of the comment",
        (5, 7),
    );
}

#[test]
fn whitespace_control_that_moves_a_value_into_a_here_document_is_seen() {
    assert_refused_before_any_host(
        "herd-moved-heredoc",
        "cat <<EOF\nEOF\n{%- if true %} {{ y }}{% endif %}\nEOF",
        "run of steps[0] on host host01: a value lands inside a here-document once the template is rendered, \
         where the shell does not remove quotes and a value could run: \
         write it with printf '%s\\n' {{ ... }} or ship the file with `upload`",
        (5, 7),
    );
}

#[test]
fn a_backslash_newline_in_a_here_document_joins_the_delimiter_line() {
    assert_refused_before_any_host(
        "herd-moved-continued",
        "cat <<EOF\nfoo\\\nEOF\n{{ y }}\nEOF",
        "run of steps[0]: `{{ y }}` is inside a here-document, where the shell does not remove quotes \
         and a value could run: write it with printf '%s\\n' {{ ... }} or ship the file with `upload`",
        (8, 7),
    );
}

#[test]
fn a_value_that_a_captured_raw_value_puts_in_quotes_fails_its_step_unrun() {
    let lab = Lab::up(1);
    let canary = Canary::new("herd-moved-captured");
    add_all_var(&lab, &format!("y: \"$(touch {})\"", canary.path()));
    let playbook = lab.write(
        "captured.yml",
        "\
hosts: web
steps:
  - name: Decide
    run: echo yes
    capture: quote
  - name: Echo
    run: \"{% if quote == 'yes' %}echo \\\"{% else %}echo {% endif %}{% if false %}\\\"{% endif %}{{ y }}\"
",
    );

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["--output", "json"])
        .run();

    assert_ne!(run.code(), 0, "{run}");
    assert!(!canary.exists(), "the value ran as shell code\n{run}");
    let echo = run
        .json_events()
        .into_iter()
        .find(|e| e["event"] == "step_finished" && e["name"] == "Echo")
        .unwrap_or_else(|| panic!("no Echo step\n{run}"));
    assert_eq!(
        echo["error"].as_str(),
        Some(
            "a value lands inside double quotes once the template is rendered, where it could run \
             as shell code; herd quotes values for you: remove the quotes"
        ),
        "{run}"
    );
}

#[test]
fn an_exec_command_whose_rendering_puts_a_value_in_quotes_is_refused() {
    let lab = Lab::up(1);
    let before = logins(&lab);

    let run = lab
        .herd(["exec"])
        .args([
            "--",
            "{% if true %}\"{% endif %}{% if false %}\"{% endif %}echo {{ inventory_hostname }}\"",
        ])
        .run();

    run.assert_code(2);
    assert!(
        run.stderr().starts_with(
            "error: on host host01: a value lands inside double quotes once the template is rendered, \
             where it could run as shell code; herd quotes values for you: remove the quotes\n  --> command:1:1\n"
        ),
        "{run}"
    );
    assert_eq!(logins(&lab), before, "a host was contacted");
}

/// What herd says when the rendered command shows a value where dash and
/// bash part ways, or bash evaluates it as arithmetic.
fn bash_place(why_and_fix: &str) -> String {
    format!("run of steps[0] on host host01: once the template is rendered, a value {why_and_fix}")
}

#[test]
fn html_escaping_is_refused_in_a_shell_field() {
    assert_refused_before_any_host(
        "herd-bash-escape",
        "{% autoescape 'html' %}echo {{ y | e }}{% endautoescape %}",
        "template error: herd quotes values for you; `| e` escapes HTML: remove it \
         in run of steps[0] on host host01",
        (5, 7),
    );
}

#[test]
fn a_filter_block_that_changes_a_value_is_refused() {
    assert_refused_before_any_host(
        "herd-bash-filter",
        "{% filter upper %}echo {{ y }}{% endfilter %}",
        "template error: a `{% filter %}` block changed a value herd quotes: \
         apply the filter to the value instead (`{{ x | upper }}`) in run of steps[0] on host host01",
        (5, 7),
    );
}

#[test]
fn a_here_document_whose_line_goes_on_inside_a_substitution_starts_after_it() {
    assert_refused_before_any_host(
        "herd-bash-heredoc",
        "cat <<EOF; x=$(true\nEOF\n)\n{{ y }}\nEOF",
        "run of steps[0]: `{{ y }}` is inside a here-document, where the shell does not remove quotes \
         and a value could run: write it with printf '%s\\n' {{ ... }} or ship the file with `upload`",
        (8, 7),
    );
}

#[test]
fn a_value_after_a_dollar_quote_is_refused() {
    assert_refused_before_any_host(
        "herd-bash-dollar",
        "echo $'\\'' {{ y }} '",
        "run of steps[0]: `{{ y }}` follows a $'...' string, which dash and bash read differently, \
         so herd cannot tell where its quotes would end: write '...' instead of $'...'",
        (5, 18),
    );
}

#[test]
fn a_value_after_double_parentheses_at_a_command_start_is_refused() {
    assert_refused_before_any_host(
        "herd-bash-parens",
        "((echo ') {{ y }}'))",
        "run of steps[0]: `{{ y }}` follows `((` at the start of a command, which bash reads as \
         arithmetic (where a value could run) and dash as two subshells: for subshells write `( (` with a space",
        (5, 17),
    );
}

#[test]
fn nested_subshells_written_without_a_space_are_refused_with_the_fix() {
    assert_refused_before_any_host(
        "herd-bash-subshells",
        "((cd {{ y }} && ls) && echo ok)",
        "run of steps[0]: `{{ y }}` follows `((` at the start of a command, which bash reads as \
         arithmetic (where a value could run) and dash as two subshells: for subshells write `( (` with a space",
        (5, 12),
    );
}

#[test]
fn a_value_after_a_single_quote_in_a_double_quoted_parameter_is_refused() {
    assert_refused_before_any_host(
        "herd-bash-brace",
        "unset x; echo \"${x-'}\"'}\"{{ y }}'",
        "run of steps[0]: `{{ y }}` follows a `'` inside \"${...}\", which dash reads as a plain \
         character and bash as a quote: move the `'` out of the ${...}",
        (5, 32),
    );
}

#[test]
fn a_backslash_newline_inside_a_here_document_operator_is_joined() {
    assert_refused_before_any_host(
        "herd-bash-join-heredoc",
        "cat <\\\n<EOF\n{{ y }}\nEOF",
        "run of steps[0] on host host01: a value lands inside a here-document once the template is rendered, \
         where the shell does not remove quotes and a value could run: \
         write it with printf '%s\\n' {{ ... }} or ship the file with `upload`",
        (5, 7),
    );
}

#[test]
fn a_backslash_newline_inside_an_arithmetic_opening_is_joined() {
    assert_refused_before_any_host(
        "herd-bash-join-arith",
        "echo $\\\n(( {{ w }} )) || true",
        "run of steps[0] on host host01: a value lands inside $((...)) once the template is rendered, \
         where the shell evaluates the value's text and it could run: move it out of the arithmetic",
        (5, 7),
    );
}

#[test]
fn a_value_in_a_bash_test_is_refused() {
    assert_refused_before_any_host(
        "herd-bash-test",
        "[[ {{ w }} -eq 1 ]] && echo one",
        &bash_place(
            "is inside [[ ... ]], where bash evaluates operands as arithmetic and a value could run: \
             write [ ... ] instead",
        ),
        (5, 7),
    );
}

#[test]
fn a_value_given_to_let_is_refused() {
    assert_refused_before_any_host(
        "herd-bash-let",
        "let n={{ w }}",
        &bash_place(
            "is an argument of `let`, which bash evaluates as arithmetic where a value could run: \
             use $(( )) on a variable the value is not in, or test the value with [ ]",
        ),
        (5, 7),
    );
}

#[test]
fn a_value_in_an_array_subscript_is_refused() {
    assert_refused_before_any_host(
        "herd-bash-subscript",
        "a[{{ w }}]=1",
        "run of steps[0]: `{{ w }}` is inside an array subscript, which bash evaluates as arithmetic \
         where a value could run: move it out of the [...]",
        (5, 9),
    );
}

#[test]
fn a_value_after_an_integer_declaration_is_refused() {
    assert_refused_before_any_host(
        "herd-bash-integer",
        "declare -i n={{ w }}",
        "run of steps[0]: `{{ w }}` follows a `declare -i` (or `typeset`, `local`, `export`, \
         `readonly` with -i), after which bash evaluates what is assigned as arithmetic where a value \
         could run: drop the -i",
        (5, 20),
    );
}

/// The forms herd's messages ask for run, and give the value as data.
#[test]
fn spaced_subshells_and_continued_lines_run_with_the_value_as_data() {
    let lab = Lab::up(1);
    let canary = Canary::new("herd-bash-accepted");
    let payload = format!("$(touch {})", canary.path());
    let playbook = lab.write(
        "accepted.yml",
        "hosts: web\nsteps:\n  - run: |\n      ( (printf %s {{ y }} > {{ app_dir }}/spaced) && true)\n      printf \\\n        %s {{ y }} > {{ app_dir }}/continued\n      echo \"${HOME-'a b'}\" > /dev/null; printf %s {{ y }} > {{ app_dir }}/brace\n",
    );

    let run = lab
        .herd(["run"])
        .arg(&playbook)
        .args(["-e", &format!("y={payload}")])
        .run();

    run.assert_code(0);
    for file in ["spaced", "continued", "brace"] {
        assert_eq!(
            fs::read_to_string(lab.app_dir("host01").join(file)).unwrap(),
            payload,
            "{file}\n{run}"
        );
    }
    assert!(!canary.exists(), "{run}");
}

#[test]
fn a_value_where_bash_reads_a_variable_name_is_refused() {
    let name = bash_place(
        "is where bash reads a variable name (after unset, read, getopts, declare and the like, printf, test or [ with -v, \
         or wait with -p; also after `command`, `builtin`, an assignment, or a quoted name such as `\\declare`), \
         whose array subscript it evaluates where a value could run: pass the value as data, not as a name",
    );
    assert_refused_before_any_host("herd-bash-name", "a=(1); unset {{ w }}", &name, (5, 7));
    // The same builtin behind `command` or an assignment, or quoted.
    assert_refused_before_any_host(
        "herd-bash-name-2",
        "echo hi\nX=1 command \\declare {{ w }}",
        &name,
        (5, 7),
    );
}
