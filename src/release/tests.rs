use super::*;

#[test]
fn ids_are_safe_file_names() {
    for good in ["v2", "20261130T021500Z", "1.4.0-rc.1", "build_7+sha"] {
        assert_eq!(check_id(good), Ok(()), "{good}");
    }
    for bad in [
        "", "..", ".hidden", "a/b", "../x", "-rf", "v 2", "v2\n", "$(id)",
    ] {
        assert!(check_id(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn shared_paths_stay_inside_shared() {
    for good in [".env", "media/", "config/settings.ini", "log/"] {
        assert_eq!(check_shared(good), Ok(()), "{good}");
    }
    for bad in [
        "",
        "/",
        "/etc/passwd",
        "../x",
        "a/../b",
        "a//b",
        "./a",
        "a b",
        "{{ x }}",
    ] {
        assert!(check_shared(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_id_variable_is_the_one_plain_variable_of_the_id() {
    let mut plan = ReleasePlan {
        path: "/srv/app".into(),
        id: Some("{{ release }}".into()),
        keep: 5,
        shared: Vec::new(),
        become_: false,
        become_user: None,
        timeout: std::time::Duration::from_secs(60),
    };
    assert_eq!(plan.id_variable().as_deref(), Some("release"));
    plan.id = Some(" {{version}} ".into());
    assert_eq!(plan.id_variable().as_deref(), Some("version"));
    plan.id = Some("{{ version }}-{{ build }}".into());
    assert_eq!(plan.id_variable(), None);
    plan.id = None;
    assert_eq!(plan.id_variable(), None);
}

#[test]
fn the_default_id_is_a_safe_utc_timestamp() {
    let id = timestamp_id();
    assert_eq!(check_id(&id), Ok(()));
    assert_eq!(id.len(), "20261130T021500Z".len(), "{id}");
    assert!(id.ends_with('Z'));
}

#[test]
fn every_release_step_keeps_values_where_quoting_protects_them() {
    let plan = ReleasePlan {
        path: "/srv/app".into(),
        id: None,
        keep: 3,
        shared: vec![".env".into(), "media/".into()],
        become_: false,
        become_user: None,
        timeout: std::time::Duration::from_secs(60),
    };
    for step in [
        plan.prepare_step(),
        plan.switch_step(),
        plan.rollback_switch_step(),
        plan.restore_step(),
    ] {
        let Action::Run(script) = &step.action else {
            panic!("a release step runs a script");
        };
        assert_eq!(
            crate::template::find_unprotected(script).map(|f| f.message()),
            None,
            "{}",
            step.name
        );
    }
}
