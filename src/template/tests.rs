use super::*;
use crate::shell::quote as shell_quote;
use serde_json::json;

fn vars(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().cloned().unwrap_or_default()
}

#[test]
fn shell_fields_quote_interpolated_values() {
    let renderer = Renderer::new();
    let v = vars(json!({"dir": "/srv/my app", "evil": "; touch /tmp/x", "port": 8000}));
    assert_eq!(
        renderer
            .render("ls {{ dir }}/current", Kind::Shell, &v)
            .unwrap(),
        "ls '/srv/my app'/current"
    );
    assert_eq!(
        renderer.render("echo {{ evil }}", Kind::Shell, &v).unwrap(),
        "echo '; touch /tmp/x'"
    );
    assert_eq!(
        renderer.render("p={{ port }}", Kind::Shell, &v).unwrap(),
        "p=8000"
    );
    assert_eq!(
        renderer
            .render("{{ evil | raw }}", Kind::Shell, &v)
            .unwrap(),
        "; touch /tmp/x"
    );
}

/// Templates whose text looks fine but whose rendered command puts a
/// value inside quotes, a comment or a here-document.
const MOVED_BY_RENDERING: [(&str, Place); 8] = [
    (
        "{% if true %}\"{% else %}\"{% endif %}{{ y }}\"",
        Place::DoubleQuotes,
    ),
    (
        "{% for i in [1,2] %}{{ y }}\"{% endfor %}",
        Place::DoubleQuotes,
    ),
    (
        "echo \"$(case a in a) echo \"{{ y }}\";; esac)\"",
        Place::DoubleQuotes,
    ),
    (
        "{% macro q() %}\"{% endmacro %}echo {{ q() }}{{ y }}{{ q() }}",
        Place::DoubleQuotes,
    ),
    (
        "{% set q %}\"{% endset %}echo {{ q }}{{ y }}{{ q }}",
        Place::DoubleQuotes,
    ),
    (
        "echo a # note\n{%- if true %} {{ x }}{% endif %}",
        Place::Comment,
    ),
    (
        "cat <<EOF\nEOF\n{%- if true %} {{ y }}{% endif %}\nEOF",
        Place::HereDocument,
    ),
    ("cat <<EOF\nfoo\\\nEOF\n{{ y }}\nEOF", Place::HereDocument),
];

#[test]
fn the_rendered_command_is_what_is_checked() {
    let renderer = Renderer::new();
    let v = vars(json!({"y": "$(touch /tmp/pwn)", "x": "a\ntouch /tmp/pwn #"}));
    for (source, place) in MOVED_BY_RENDERING {
        assert_eq!(
            renderer.render(source, Kind::Shell, &v),
            Err(TemplateError::Unprotected { place }),
            "{source}"
        );
        assert_eq!(
            renderer.render_shown(source, Kind::Shell, &v),
            Err(TemplateError::Unprotected { place }),
            "{source}"
        );
    }
}

#[test]
fn values_from_loops_macros_and_blocks_are_quoted_where_they_land() {
    let renderer = Renderer::new();
    let v = vars(json!({"y": "$(touch /tmp/pwn)", "q": "\"", "items": ["a b", "c"]}));
    for (source, expected) in [
        (
            "{% for i in items %}echo {{ i }};{% endfor %}",
            "echo 'a b';echo c;",
        ),
        (
            "{% macro e(v) %}echo {{ v }}{% endmacro %}{{ e(y) }}",
            "echo '$(touch /tmp/pwn)'",
        ),
        (
            "{% set s %}x={{ y }}{% endset %}{{ s }} && {{ s | raw }}",
            "x='$(touch /tmp/pwn)' && x='$(touch /tmp/pwn)'",
        ),
        // A block's output used as a value is quoted as a whole.
        (
            "{% set s %}{{ y }}!{% endset %}echo {{ s ~ '' }}",
            "echo '$(touch /tmp/pwn)!'",
        ),
        // A raw value is shell text: `q | raw` opens a quote, and so the
        // value after it is inside it.
        (
            "echo {{ q | raw }}{{ q | raw }} {{ y }}",
            "echo \"\" '$(touch /tmp/pwn)'",
        ),
        (
            "echo \"$(case a in a) echo {{ y }};; esac)\"",
            "echo \"$(case a in a) echo '$(touch /tmp/pwn)';; esac)\"",
        ),
    ] {
        assert_eq!(
            renderer.render(source, Kind::Shell, &v).as_deref(),
            Ok(expected),
            "{source}"
        );
    }
    assert_eq!(
        renderer.render("echo {{ q | raw }}{{ y }}{{ q | raw }}", Kind::Shell, &v),
        Err(TemplateError::Unprotected {
            place: Place::DoubleQuotes
        })
    );
    assert_eq!(
        renderer.render("echo \\{{ y }} ${{ y }}", Kind::Shell, &v),
        Err(TemplateError::Unprotected {
            place: Place::Escaped
        })
    );
}

#[test]
fn filters_that_mark_their_output_safe_still_quote_values() {
    let renderer = Renderer::new();
    let v = vars(json!({"y": "$(touch /tmp/pwn)", "l": ["$(a)", "b"]}));
    for (source, expected) in [
        ("echo {{ l | join(' ') }}", "echo '$(a) b'"),
        (
            "echo {{ y | replace('a', 'b') }}",
            "echo '$(touch /tmp/pwn)'",
        ),
        ("echo {{ '%s' | format(y) }}", "echo '$(touch /tmp/pwn)'"),
    ] {
        assert_eq!(
            renderer.render(source, Kind::Shell, &v).as_deref(),
            Ok(expected),
            "{source}"
        );
    }
}

#[test]
fn json_text_is_quoted_like_any_value() {
    let renderer = Renderer::new();
    let v = vars(json!({"y": "$(touch /tmp/pwn) \"`id`\" 'q'", "m": {"k": [1, true, null]}}));
    assert_eq!(
        renderer
            .render("echo {{ y | to_json }}", Kind::Shell, &v)
            .as_deref(),
        Ok(r#"echo '"$(touch /tmp/pwn) \"`id`\" '\''q'\''"'"#)
    );
    assert_eq!(
        renderer
            .render("echo {{ m | tojson }}", Kind::Shell, &v)
            .as_deref(),
        Ok(r#"echo '{"k":[1,true,null]}'"#)
    );
    assert_eq!(
        renderer
            .render("{{ m | to_json }}", Kind::Plain, &v)
            .as_deref(),
        Ok(r#"{"k":[1,true,null]}"#)
    );
}

#[test]
fn html_escaping_is_refused_in_shell_fields() {
    let renderer = Renderer::new();
    let v = vars(json!({"v": "$(touch /tmp/pwn)"}));
    for source in [
        "{% autoescape 'html' %}echo {{ v | e }}{% endautoescape %}",
        "{% autoescape 'html' %}echo {{ v | e | upper }}{% endautoescape %}",
        "echo {{ v | escape }}",
        "echo {{ v | e }}",
    ] {
        assert_eq!(
            renderer.render(source, Kind::Shell, &v),
            Err(TemplateError::Invalid {
                message: "herd quotes values for you; `| e` escapes HTML: remove it".into()
            }),
            "{source}"
        );
    }
    assert_eq!(
        renderer.render("<b>{{ '<' | e }}</b>", Kind::Plain, &v),
        Ok("<b>&lt;</b>".to_string())
    );
}

#[test]
fn a_filter_block_that_changes_a_value_is_refused() {
    let renderer = Renderer::new();
    let v = vars(json!({"v": "$(touch /tmp/pwn)", "w": "ok"}));
    for source in [
        "{% filter upper %}echo {{ v }}{% endfilter %}",
        "{% filter upper %}echo {{ w }}{% endfilter %}",
        "{% filter replace('herd', 'x') %}echo {{ w }}{% endfilter %}",
        "{% filter reverse %}echo {{ w }}{% endfilter %}",
        "{% macro m() %}{{ w }}{% endmacro %}echo {{ m() | upper }}",
    ] {
        let Err(TemplateError::Invalid { message }) = renderer.render(source, Kind::Shell, &v)
        else {
            panic!("{source} rendered");
        };
        assert!(
            message.starts_with("a `{% filter %}` block changed a value herd quotes"),
            "{source}: {message}"
        );
    }
    // A filter block over text alone, and a filter on the value, are fine.
    assert_eq!(
        renderer.render(
            "{% filter upper %}echo{% endfilter %} {{ v | upper }}",
            Kind::Shell,
            &v
        ),
        Ok("ECHO '$(TOUCH /TMP/PWN)'".to_string())
    );
}

#[test]
fn a_value_cannot_pass_for_a_placeholder() {
    let renderer = Renderer::new();
    let mut placeholders = Placeholders::new();
    let forged = placeholders.add("\"").unwrap();
    let v = vars(json!({"a": forged, "b": "$(x)"}));
    assert_eq!(
        renderer
            .render("echo {{ a }} {{ b }}", Kind::Shell, &v)
            .unwrap(),
        format!("echo {} '$(x)'", shell_quote(&forged))
    );
    assert_eq!(
        placeholders.fill(&format!("echo \"{forged}\"")),
        Err(TemplateError::Unprotected {
            place: Place::DoubleQuotes
        })
    );
    assert_eq!(
        placeholders.fill(&format!("echo {forged}")).as_deref(),
        Ok("echo '\"'")
    );
}

#[test]
fn safe_and_autoescape_do_not_turn_quoting_off() {
    let renderer = Renderer::new();
    let v = vars(json!({"evil": "; touch /tmp/x"}));
    let Err(TemplateError::Invalid { message }) =
        renderer.render("echo {{ evil | safe }}", Kind::Shell, &v)
    else {
        panic!("`| safe` rendered");
    };
    assert!(message.contains("write `| raw`"), "{message}");
    assert_eq!(
        renderer
            .render(
                "{% autoescape false %}echo {{ evil }}{% endautoescape %}",
                Kind::Shell,
                &v
            )
            .unwrap(),
        "echo '; touch /tmp/x'"
    );
}

#[test]
fn host_output_is_masked_in_every_form_a_secret_takes() {
    let secrets = Secrets::default();
    secrets.record("it's-secret");
    secrets.record("42");
    assert_eq!(
        secrets.mask("a it's-secret b 'it'\\''s-secret' c"),
        "a *** b '***' c"
    );
    // A short secret: only in the output of a command that used it, as a word.
    assert_eq!(secrets.mask("pin 42"), "pin 42");
    let uses = ["42".to_string()];
    assert_eq!(
        secrets.mask_used("pin 42, not 1425 nor x42", &uses),
        "pin ***, not 1425 nor x42"
    );
    // What a command was given made from a secret, whatever its form.
    let uses = ["IT'S-SECRET".to_string()];
    assert_eq!(
        secrets.mask_used("IT'S-SECRET 'IT'\\''S-SECRET'", &uses),
        "*** '***'"
    );
}

#[test]
fn shown_renders_put_stars_where_environment_values_go() {
    std::env::set_var("HERD_TEST_SHOWN", "o'clock");
    let renderer = Renderer::new();
    let none = serde_json::Map::new();
    assert_eq!(
        renderer
            .render("echo {{ env.HERD_TEST_SHOWN }}", Kind::Shell, &none)
            .unwrap(),
        r"echo 'o'\''clock'"
    );
    assert_eq!(
        renderer
            .render_shown("echo {{ env.HERD_TEST_SHOWN }}", Kind::Shell, &none)
            .unwrap(),
        "echo '***'"
    );
}

#[test]
fn plain_fields_are_not_quoted() {
    let renderer = Renderer::new();
    let v = vars(json!({"dir": "/srv/my app"}));
    assert_eq!(
        renderer.render("{{ dir }}/x", Kind::Plain, &v).unwrap(),
        "/srv/my app/x"
    );
}

#[test]
fn single_quotes_survive_quoting() {
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
}

#[test]
fn undefined_variables_are_named() {
    let renderer = Renderer::new();
    let v = vars(json!({"app": {"dir": "/a"}}));
    assert_eq!(
        renderer.render("cd {{ app.dir }} && {{ relase }}", Kind::Shell, &v),
        Err(TemplateError::Undefined {
            name: "relase".into()
        })
    );
    assert_eq!(
        renderer.render("{{ app.nope }}", Kind::Shell, &v),
        Err(TemplateError::Undefined {
            name: "app.nope".into()
        })
    );
}

#[test]
fn environment_values_are_secrets() {
    std::env::set_var("HERD_TEST_TOKEN", "s3cr3t-value");
    let renderer = Renderer::new();
    let out = renderer
        .render(
            "curl -H {{ env.HERD_TEST_TOKEN }}",
            Kind::Shell,
            &serde_json::Map::new(),
        )
        .unwrap();
    assert_eq!(out, "curl -H s3cr3t-value");
    assert_eq!(renderer.secrets().mask(&out), "curl -H ***");
    assert_eq!(
        renderer.render(
            "{{ env.HERD_TEST_MISSING_VAR }}",
            Kind::Shell,
            &serde_json::Map::new()
        ),
        Err(TemplateError::Undefined {
            name: "env.HERD_TEST_MISSING_VAR".into()
        })
    );
}

mod any_value {
    use super::*;
    use proptest::prelude::*;

    /// What `shell` prints for `command`: stdout and stderr.
    fn run(shell: &str, command: &str) -> (Vec<u8>, Vec<u8>) {
        let output = std::process::Command::new(shell)
            .args(["-c", command])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (output.stdout, output.stderr)
    }

    fn sh(command: &str) -> Vec<u8> {
        run("/bin/sh", command).0
    }

    /// Bits of shell and template text, values among them.
    fn fragment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            " ",
            "\n",
            "\"",
            "'",
            "`",
            "$(",
            ")",
            "#",
            "\\",
            "$",
            ";",
            "echo ",
            "printf %s ",
            "case a in a) ",
            ";; esac",
            "cat <<EOF\n",
            "\nEOF\n",
            "{{ v }}",
            "{{ v }}",
            "{{ r | raw }}",
            "{% if true %}\"{% endif %}",
            "{%- if true %}",
            "{% endif -%}",
            "{% for i in [1, 2] %}",
            "{% endfor %}",
            "$((",
            "((",
            "${a:-",
            "}",
            "$'",
            "\"${x-'",
            "\\\n",
            "<\\\n<EOF\n",
            "[[ ",
            " -eq 1 ]]",
            "let n=",
            "a[",
            "]=1",
            "declare -i n=",
            "x=$(true\n",
            "{% filter upper %}",
            "{% endfilter %}",
        ])
    }

    /// Templates whose rendered command dash or bash would read so that
    /// the quoted value runs: herd refuses them.
    #[test]
    fn what_dash_or_bash_would_run_is_refused() {
        let payload = "a[$(printf P\"\"WNED >&2)]";
        let v = vars(json!({ "v": payload }));
        for template in [
            "cat <<EOF; x=$(true\nEOF\n)\n{{ v }}\nEOF",
            "echo $'\\'' {{ v }} '",
            "((echo ') {{ v }}'))",
            "unset x; echo \"${x-'}\"'}\"{{ v }}'",
            "cat <\\\n<EOF\n{{ v }}\nEOF",
            "echo $\\\n(( {{ v }} )) || true",
            "[[ {{ v }} -eq 1 ]]",
            "let n={{ v }}",
            "a[{{ v }}]=1",
            "declare -i n={{ v }}",
            "typeset -i n; n={{ v }}",
            "a=(1); unset {{ v }}",
            "printf -v {{ v }} %s x",
            "read {{ v }} <<EOF\nx\nEOF",
            "test -v {{ v }}",
        ] {
            // The command as it was rendered before herd refused it.
            let command = template.replace("{{ v }}", &shell_quote(payload));
            let ran = ["/bin/dash", "/bin/bash"].into_iter().any(|shell| {
                let (out, err) = run(shell, &command);
                String::from_utf8_lossy(&[out, err].concat()).contains("PWNED")
            });
            assert!(ran, "no shell runs the value of {template:?}: {command:?}");
            assert!(
                matches!(
                    Renderer::new().render(template, Kind::Shell, &v),
                    Err(TemplateError::Unprotected { .. })
                ),
                "{template:?} rendered"
            );
        }
    }

    /// The forms herd accepts in their place give the value as data.
    #[test]
    fn the_forms_to_write_instead_are_accepted() {
        let payload = "a[$(printf P\"\"WNED >&2)]'\"";
        let v = vars(json!({ "v": payload }));
        for template in [
            "( (printf %s {{ v }}) && true)",
            "echo \"${x-'a b'}\" >/dev/null; printf %s {{ v }}",
            "printf \\\n  %s {{ v }}",
            "[ -n {{ v }} ] && printf %s {{ v }}",
            "x=$(cat <<EOF\nbody\nEOF\n) && printf %s {{ v }}",
            "declare -r x={{ v }} 2>/dev/null || x={{ v }}; printf %s \"$x\"",
        ] {
            let command = Renderer::new()
                .render(template, Kind::Shell, &v)
                .unwrap_or_else(|e| panic!("{template:?}: {e}"));
            for shell in ["/bin/dash", "/bin/bash"] {
                let (out, err) = run(shell, &command);
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    payload,
                    "{template:?} in {shell}: {}",
                    String::from_utf8_lossy(&err)
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Wherever an accepted value lands, it arrives as data, byte for byte.
        #[test]
        fn an_accepted_value_arrives_byte_exact(value in "[^\x00]{0,24}", at in 0usize..4) {
            let template = [
                "printf %s {{ v }}",
                "printf %s \"$(printf %s {{ v }}; echo .)\" | sed '$s/.$//'",
                "x={{ v }}; printf %s \"$x\"",
                "{% for i in [1] %}printf %s {{ v }}{% endfor %}",
            ][at];
            let v = vars(json!({ "v": value }));
            let command = Renderer::new().render(template, Kind::Shell, &v).unwrap();
            prop_assert_eq!(sh(&command), value.as_bytes());
        }

        /// Whatever the template, a value that is not `| raw` never runs.
        #[test]
        fn an_accepted_command_never_runs_a_value(parts in prop::collection::vec(fragment(), 0..12)) {
            let template: String = parts.concat();
            let payload = "a[$(printf P\"\"WNED >&2)]'\"$(printf P\"\"WNED)`printf P\"\"WNED`\nprintf P\"\"WNED #";
            // A raw value is shell text: here, a quote that moves the others.
            let v = vars(json!({ "v": payload, "r": "\"" }));
            if let Ok(command) = Renderer::new().render(&template, Kind::Shell, &v) {
                // dash and, where there is one, bash (arrays, `((...))`).
                for shell in ["/bin/sh", "/bin/bash"] {
                    if !std::path::Path::new(shell).exists() {
                        continue;
                    }
                    let (out, err) = run(shell, &command);
                    let said = [out, err].concat();
                    prop_assert!(
                        !String::from_utf8_lossy(&said).contains("PWNED"),
                        "{template:?} ran the value in {shell}: {command:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_template_error_never_quotes_a_secret_whatever_its_length() {
    std::env::set_var("HERD_TEST_ERROR_TOKEN", "env-s3cr3t");
    let renderer = Renderer::new();
    renderer.secrets().record("DBSECRETXYZ");
    renderer.secrets().record("987654321");
    renderer.secrets().record("ab");
    renderer.secrets().record("7");
    let v = vars(json!({"pass": "DBSECRETXYZ", "pin": 987654321, "short": "ab", "one": "7"}));
    let message = |source: &str, kind: Kind| match renderer.render(source, kind, &v) {
        Err(TemplateError::Invalid { message }) => message,
        other => panic!("{source} gave {other:?}"),
    };
    assert_eq!(
        message("echo {% include pass %}", Kind::Shell),
        "tried to include non-existing template \"***\""
    );
    assert_eq!(
        message("{% include env.HERD_TEST_ERROR_TOKEN %}", Kind::Plain),
        "tried to include non-existing template \"***\""
    );
    assert_eq!(
        message("echo {{ pin ** 99 }}", Kind::Shell),
        "unable to calculate *** ** 99"
    );
    // A short secret where the message quotes it, or a number standing alone.
    assert_eq!(
        message("echo {{ 'x' | indent(**{short: 1}) }}", Kind::Shell),
        "unknown keyword argument '***'"
    );
    assert_eq!(
        message("{{ (one | int) ** 999 }}", Kind::Plain),
        "unable to calculate *** ** 999"
    );
    // Free text keeps a short secret that is a word of it ("ab" in "able").
    assert_eq!(
        message("{{ 'x' | indent(**{'tab': 1}) }}", Kind::Plain),
        "unknown keyword argument 'tab'"
    );
    assert_eq!(
        renderer
            .secrets()
            .mask_message("7 of 17, 1.7, x7, '7', \"ab\", `ab`, table, ab"),
        "*** of 17, 1.7, x7, '***', \"***\", `***`, table, ab"
    );
    let Err(TemplateError::Invalid { message }) =
        renderer.condition("'x' | indent(**{short: 1}) == 'x'", &v)
    else {
        panic!("the condition held");
    };
    assert_eq!(message, "unknown keyword argument '***'");
}

#[test]
fn a_name_cut_for_display_masks_the_piece_of_a_secret_left_at_the_cut() {
    let secrets = Secrets::default();
    secrets.record("HOST1TOKEN");
    secrets.record("ab");
    assert_eq!(secrets.mask_name("rotate HOST1TOKEN now"), "rotate *** now");
    assert_eq!(secrets.mask_name("echo HOST1TOK…"), "echo ***…");
    assert_eq!(
        secrets.mask_name("echo HOST1TOKEN x HOS…"),
        "echo *** x ***…"
    );
    // A piece under three characters, or a name not cut, is left.
    assert_eq!(secrets.mask_name("echo HO…"), "echo HO…");
    assert_eq!(secrets.mask_name("echo HOST1"), "echo HOST1");
}
