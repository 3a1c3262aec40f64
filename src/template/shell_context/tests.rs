use super::*;

fn place(source: &str) -> Option<Place> {
    find_unprotected(source).map(|u| u.place)
}

#[test]
fn values_where_the_shell_reads_words_are_protected() {
    for source in [
        "echo {{ x }}",
        "ls {{ dir }}/current && echo done",
        "echo \"$(cat {{ file }})\"",
        "x=$(printf '%s' {{ x }})",
        "echo 'a' {{ x }} \"b\"",
        "echo \\\"{{ x }}",
        "echo it\\'s {{ x }}",
        "echo a#b {{ x }}",
        "{# \"{{ x }}\" #} echo {{ x }}",
        "{% if x == '\"' %}echo {{ x }}{% endif %}",
        "echo {{ \"'\" ~ x }}",
        "cat <<EOF\nplain\nEOF\necho {{ x }}",
        "echo $(( (1 + 2) )) {{ x }}",
        "echo \"{{ x | raw }}\"",
        "echo '{{ x|raw }}'",
        "{% raw %}echo \"{{ x }}\"{% endraw %}",
        "echo \"$(case a in (a|b) echo x;; *) echo y;; esac)\" {{ x }}",
        "echo \"$(case a in a) case b in b) :;; esac;; esac)\" {{ x }}",
        "x=$(case {{ x }} in a) echo;; esac) {{ x }}",
        "echo case $(echo esac) {{ x }}",
        "echo \"$({ case a in a) echo;; esac; })\" {{ x }}",
        "echo \"$(if true; then case a in a) echo;; esac; fi)\" {{ x }}",
        "cat <<'EOF'\nfoo\\\nEOF\necho {{ x }}",
        "cat <<EOF\nfoo\\\\\nEOF\necho {{ x }}",
    ] {
        assert_eq!(place(source), None, "{source}");
    }
}

#[test]
fn values_inside_quotes_and_other_unsafe_places_are_found() {
    for (source, expected) in [
        ("echo \"{{ x }}\"", Place::DoubleQuotes),
        ("echo \"a $(b) {{ x }}\"", Place::DoubleQuotes),
        ("echo '{{ x }}'", Place::SingleQuotes),
        ("echo \"it\\\"s {{ x }}\"", Place::DoubleQuotes),
        ("echo $'a\\'{{ x }}'", Place::AfterDollarQuote),
        ("echo `cat {{ x }}`", Place::Backquotes),
        ("echo $(( {{ x }} + 1 ))", Place::Arithmetic),
        ("echo \"$(echo \"{{ x }}\")\"", Place::DoubleQuotes),
        ("echo a # {{ x }}", Place::Comment),
        ("cat <<EOF\nkey={{ x }}\nEOF", Place::HereDocument),
        (
            "cat <<-'EOF' > f\n\tkey={{ x }}\n\tEOF",
            Place::HereDocument,
        ),
        ("echo \"{{ x | upper }}\"", Place::DoubleQuotes),
        ("echo \"{{ x | raw | upper }}\"", Place::DoubleQuotes),
        ("echo \"{{ 'a|raw' }}\"", Place::DoubleQuotes),
        ("echo \"{{- x -}}\"", Place::DoubleQuotes),
        ("{% if a %}echo \"{% endif %}{{ x }}\"", Place::DoubleQuotes),
        // A pattern's `)` does not end the `$(...)`.
        (
            "echo \"$(case a in a) echo \"{{ x }}\";; esac)\"",
            Place::DoubleQuotes,
        ),
        // A backslash at the end of a body line joins the next: that
        // `EOF` is not the delimiter.
        ("cat <<EOF\nfoo\\\nEOF\n{{ x }}\nEOF", Place::HereDocument),
    ] {
        assert_eq!(place(source), Some(expected), "{source}");
    }
}

mod any_text {
    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the text, the scan ends, and what it reports is a `{{` of it.
        #[test]
        fn the_scan_never_panics(text in "[a-z \n'\"`$()#<{}%|\\\t-]{0,60}") {
            if let Some(found) = find_unprotected(&text) {
                prop_assert!(text[found.offset..].starts_with("{{"));
            }
        }

        /// Whatever the rendered text, the check ends and reports a byte
        /// offset in it.
        #[test]
        fn the_rendered_check_never_panics(text in "([a-z \n'\"`$(){}#<;|\\\t]|@v|é){0,60}") {
            if let Some((offset, _)) = find_misplaced(&text, "@v") {
                prop_assert!(offset <= text.len());
            }
        }
    }
}

/// Where the placeholder `@v` sits in rendered text.
fn rendered(text: &str) -> Option<Place> {
    find_misplaced(text, "@v").map(|(_, place)| place)
}

#[test]
fn placeholders_are_found_in_rendered_text_by_the_same_rules() {
    for text in [
        "echo @v",
        "echo \"$(printf %s @v)\"",
        "echo \"$(case a in a) echo @v;; esac)\"",
        "for i in 1 2; do echo @v; done",
        "cat <<'EOF'\nx\\\nEOF\necho @v",
        "a=@v b=x@vy \"\"@v\"\"",
        "echo $(( (1 + 2) * 3 )) \"${a:-\"}\"}\" @v",
        "( (true) ) && echo $(echo $((1))) @v",
    ] {
        assert_eq!(rendered(text), None, "{text}");
    }
    for (text, expected) in [
        ("echo \"@v\"", Place::DoubleQuotes),
        (
            "echo \"$(case a in a) echo \"@v\";; esac)\"",
            Place::DoubleQuotes,
        ),
        ("echo a # note @v", Place::Comment),
        ("cat <<EOF\n @v\nEOF", Place::HereDocument),
        ("cat <<EOF\nfoo\\\nEOF\n@v\nEOF", Place::HereDocument),
        ("cat <<@v\nx\n", Place::HereDocument),
        ("echo \\@v", Place::Escaped),
        ("echo $@v", Place::Escaped),
        ("echo \"\\@v\"", Place::DoubleQuotes),
        ("echo `@v`", Place::Backquotes),
        ("echo $(( @v + 1 ))", Place::Arithmetic),
        ("echo \"$(( (@v) ))\"", Place::Arithmetic),
        ("(( @v > 1 )) && echo", Place::DoubleParens),
        ("echo ${a[@v]}", Place::Parameter),
        ("echo \"${a:-@v}\"", Place::Parameter),
    ] {
        assert_eq!(rendered(text), Some(expected), "{text}");
    }
}

#[test]
fn where_dash_and_bash_read_the_text_differently_values_are_refused() {
    for (text, expected) in [
        // A here-document's line that goes on inside `$(`.
        ("cat <<EOF; x=$(true\nEOF\n)\n@v\nEOF", Place::HereDocument),
        (
            "cat <<EOF; x=$(true\nEOF\n) @v\nEOF",
            Place::HereDocumentStart,
        ),
        ("cat <<EOF; echo \"a\n@v\"\nEOF", Place::HereDocumentStart),
        // `$'...'` is bash's; dash reads `$` and a quoted string.
        ("echo $'\\'' @v '", Place::AfterDollarQuote),
        ("echo $'a' @v", Place::AfterDollarQuote),
        // `((` at the start of a command.
        ("((echo ') @v'))", Place::DoubleParens),
        ("((cd @v && ls) && echo ok)", Place::DoubleParens),
        // A `'` in "${...}": literal to POSIX shells, a quote to bash.
        ("unset x; echo \"${x-'}\"'}\"@v'", Place::QuoteInParameter),
        ("echo \"${HOME:-it's}\" @v", Place::QuoteInParameter),
        // A backslash-newline is gone before the shell reads tokens.
        ("cat <\\\n<EOF\n@v\nEOF", Place::HereDocument),
        ("echo $\\\n(( @v )) || true", Place::Arithmetic),
        ("echo $\\\n@v", Place::Escaped),
        ("echo \\\n\"@v\"", Place::DoubleQuotes),
        ("cat <<E\\\nOF\n@v\nEOF", Place::HereDocument),
        // What bash evaluates as arithmetic.
        ("[[ @v -eq 1 ]]", Place::Test),
        ("[[ 1 -eq 1 && @v -eq 1 ]]", Place::Test),
        ("[[ $(echo @v) -eq 1 ]]", Place::Test),
        ("if [[ @v -eq 1 ]]; then :; fi", Place::Test),
        ("x && ! [[ @v -eq 1 ]]", Place::Test),
        ("[[ a == b || @v -eq 1 ]]", Place::Test),
        ("let n=@v", Place::Let),
        ("true; let n=1 @v", Place::Let),
        ("a[@v]=1", Place::Subscript),
        ("x=1; a[1+@v]=1", Place::Subscript),
        ("declare -i n=@v", Place::Integer),
        ("local -ai n; n=@v", Place::Integer),
        ("echo $(( $(echo @v) ))", Place::Arithmetic),
        ("echo ${a[$(echo @v)]}", Place::Parameter),
        ("echo `echo $(echo @v)`", Place::Backquotes),
        ("unset @v", Place::Name),
        ("read -r x @v", Place::Name),
        ("declare @v", Place::Name),
        ("local x @v", Place::Name),
        ("printf -v @v %s x", Place::Name),
        ("test -v @v", Place::Name),
        ("[ -v @v ]", Place::Name),
        // The same builtins behind `command`, `builtin`, an assignment, or
        // a quoted name: bash runs the builtin all the same.
        ("command declare @v", Place::Name),
        ("builtin declare @v", Place::Name),
        ("builtin unset @v", Place::Name),
        ("command unset -v @v", Place::Name),
        ("command -p declare @v", Place::Name),
        ("\\declare @v", Place::Name),
        ("'unset' @v", Place::Name),
        ("de\"clare\" @v", Place::Name),
        ("un\\set @v", Place::Name),
        ("y=1 declare @v", Place::Name),
        ("y='a b' z=2 unset @v", Place::Name),
        ("builtin let @v", Place::Let),
        ("\\let @v", Place::Let),
        ("y=1 test -v @v", Place::Name),
        ("command [ -v @v ]", Place::Name),
        ("y=1 printf -v @v %s x", Place::Name),
        ("true; command builtin read @v", Place::Name),
        // `wait -p NAME`, `getopts OPTS NAME`, and a name reference.
        ("sleep 0 & wait -n -p @v", Place::Name),
        ("sleep 0 & wait -np @v", Place::Name),
        ("getopts ab @v", Place::Name),
        ("declare -n r=@v", Place::Nameref),
        ("local -n r=@v", Place::Nameref),
        // In a function's body, after `time -p` or `coproc`, with the name
        // attached to its option, or behind an alias.
        ("f() { read @v; }; f", Place::Name),
        ("f() { unset @v; }", Place::Name),
        ("function f { declare @v; }", Place::Name),
        ("f() { local @v; }; f", Place::Name),
        ("time -p declare @v", Place::Name),
        ("time -p unset @v", Place::Name),
        ("coproc declare @v", Place::Name),
        ("printf -v@v %s y", Place::Name),
        ("read -ra@v", Place::Name),
        ("sleep 0 & wait -n -p@v", Place::Name),
        ("declare -a@v", Place::Name),
        ("unset x 2>&1 @v", Place::Name),
        ("unset x &>/dev/null @v", Place::Name),
        ("alias d=declare\nd @v", Place::Alias),
    ] {
        assert_eq!(rendered(text), Some(expected), "{text:?}");
    }
    for text in [
        "( (cd @v && ls) && echo ok)",
        "echo \"${x-'a b'}\" @v",
        "echo ${x-'}'} @v",
        "echo \"$'\" @v",
        "echo \\\n  @v",
        "ls \\\n  -l @v \\\n  -a",
        "echo '\\\n' @v",
        "cat <<'EOF'\nfoo\\\nEOF\necho @v",
        "[[ -n x ]] && echo @v",
        "[[ -n x || -n y ]]; echo @v",
        "let n=1; echo @v",
        "echo [[ @v",
        "[ @v -eq 1 ]",
        "echo a[@v]",
        "declare -r x=@v",
        "export X=@v",
        "x=$(cat <<EOF\nbody\nEOF\n) && echo @v",
        "let_me @v",
        "printf -v out %s @v",
        "grep -v @v f",
        "[ -n @v ]",
        "declare x=@v",
        "local x=@v y=@v",
        "echo unset @v",
        "command echo @v",
        "y=1 echo @v",
        "'echo' @v",
        "\\ls @v",
        "echo declare @v",
        "wait @v",
        "wait -n @v",
        "command -v @v",
        "echo 'unset' @v",
        "y=@v echo @v",
        // A redirection's target is not a name; `export -n` un-exports.
        "read -r line < @v",
        "mapfile -t arr < @v",
        "unset x 2>@v",
        "declare -p > @v",
        "read -r x <@v; echo @v",
        "export -n FOO; echo @v",
        "printf -vout %s @v",
        "echo { @v }",
        "read x; echo @v",
        "touch @v/r; i=0; while [ ! -e @v/go ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i+1)); done",
        "p=$(cat @v); kill -TERM $p; while kill -0 $p && ! grep -q \"^S\" /proc/$p/status; do :; done",
    ] {
        assert_eq!(rendered(text), None, "{text:?}");
    }
    // The template's own text says so too, pointing at the `{{ }}`.
    assert_eq!(
        place("((cd {{ x }} && ls) && echo ok)"),
        Some(Place::DoubleParens)
    );
    assert_eq!(place("echo $'a' {{ x }}"), Some(Place::AfterDollarQuote));
    assert_eq!(place("( (cd {{ x }} && ls) && echo ok)"), None);
}

#[test]
fn the_offset_and_expression_point_at_the_value() {
    let found = find_unprotected("echo {{ a }} \"{{ b }}\"").unwrap();
    assert_eq!(found.offset, 14);
    assert_eq!(found.expression, "{{ b }}");
    let heredoc = find_unprotected("cat <<EOF\nk={{ v }}\nEOF").unwrap();
    assert_eq!(heredoc.offset, 12);
    assert_eq!(heredoc.expression, "{{ v }}");
}
