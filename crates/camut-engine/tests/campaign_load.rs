//! Loading campaign files: good ones in both module styles, and each kind of bad one.

use camut_engine::{Campaign, CampaignError};

#[test]
fn commonjs_campaign_loads() {
    let c = Campaign::from_source(
        "a.js",
        "exports.campaign = { id: 'a', users: 3, iterations: 2 };\nexports.test = function (done) { done(); };\n",
    )
    .unwrap();
    assert_eq!(c.options.id, "a");
    assert_eq!(c.options.users, 3);
}

#[test]
fn es_module_campaign_loads() {
    let c = Campaign::from_source(
        "m.js",
        "export const campaign = { id: 'm', users: 2 };\nexport async function test() { await null; }\n",
    )
    .unwrap();
    assert_eq!(c.options.id, "m");
}

#[test]
fn module_exports_object_loads() {
    let c = Campaign::from_source(
        "x.js",
        "module.exports = { campaign: { id: 'x' }, test: function (done) { done(); } };",
    )
    .unwrap();
    assert_eq!(c.options.id, "x");
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let e = Campaign::from_source(
        "bad.js",
        "exports.campaign = { id: 'a' };\nexports.test = function (done) {\n  var x = ;\n};\n",
    )
    .unwrap_err();
    match &e {
        CampaignError::Syntax {
            file, line, column, ..
        } => {
            assert_eq!(file, "bad.js");
            assert_eq!(*line, 3, "{e}");
            assert!(*column >= 9 && *column <= 11, "{e}");
        }
        other => panic!("expected a syntax error, got {other}"),
    }
    assert!(e.to_string().starts_with("bad.js:3:"), "{e}");
}

#[test]
fn syntax_error_on_line_one_has_file_column() {
    let e = Campaign::from_source("one.js", "exports.campaign = { id: 'a' ;").unwrap_err();
    match e {
        CampaignError::Syntax { line, column, .. } => {
            assert_eq!(line, 1);
            assert!(
                column < 35,
                "column {column} must be the file's, not the wrapper's"
            );
        }
        other => panic!("expected a syntax error, got {other}"),
    }
}

#[test]
fn missing_test_is_refused() {
    let e = Campaign::from_source("t.js", "exports.campaign = { id: 'a' };").unwrap_err();
    assert!(matches!(e, CampaignError::MissingTest { .. }), "{e}");
    assert!(e.to_string().contains("exports.test"), "{e}");
}

#[test]
fn missing_campaign_is_refused() {
    let e = Campaign::from_source("t.js", "exports.test = function (d) { d(); };").unwrap_err();
    assert!(matches!(e, CampaignError::MissingCampaign { .. }), "{e}");
}

#[test]
fn negative_users_and_typos_are_refused() {
    let e = Campaign::from_source(
        "t.js",
        "exports.campaign = { id: 'a', users: -1 };\nexports.test = function (d) { d(); };",
    )
    .unwrap_err();
    assert!(e.to_string().contains("`users`"), "{e}");
    let e = Campaign::from_source(
        "t.js",
        "exports.campaign = { id: 'a', iteration: 5 };\nexports.test = function (d) { d(); };",
    )
    .unwrap_err();
    assert!(e.to_string().contains("did you mean `iterations`"), "{e}");
}

#[test]
fn top_level_throw_is_reported() {
    let e = Campaign::from_source("t.js", "exports.campaign = { id: 'a' };\nthrow new Error('boom');\nexports.test = function (d) { d(); };")
        .unwrap_err();
    assert!(matches!(e, CampaignError::TopLevel { .. }), "{e}");
    assert!(e.to_string().contains("boom"), "{e}");
}

#[test]
fn endless_top_level_loop_is_interrupted() {
    let e = Campaign::from_source(
        "t.js",
        "exports.campaign = { id: 'a' };\nwhile (true) {}\nexports.test = function (d) { d(); };",
    )
    .unwrap_err();
    assert!(e.to_string().contains("interrupted"), "{e}");
}

#[test]
fn top_level_code_sees_the_scope() {
    let c = Campaign::from_source(
        "s.js",
        "const TARGET = camut.env.TARGET || 'http://127.0.0.1:8080';\nconsole.log('loading');\nexports.campaign = { id: 's' + camut.vu.index };\nexports.test = function (done) { done(); };\n",
    )
    .unwrap();
    assert_eq!(c.options.id, "s0");
}
