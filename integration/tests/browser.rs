//! Browser emulation with the real binaries: `camut run examples/browser.js` against
//! `camut target`, counts checked against what the target served.

use camut_integration::{repo_root, show, TargetProcess};

#[test]
fn the_browser_example_signs_in_through_the_form_and_follows_the_link() {
    let target = TargetProcess::start();
    let example = repo_root().join("examples/browser.js");
    let json = std::env::temp_dir().join(format!("camut-browser-{}.json", std::process::id()));
    let out = target.run(
        &example,
        &[
            "--threads",
            "2",
            "--quiet",
            "--summary-json",
            json.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&json).unwrap_or_default();
    let _ = std::fs::remove_file(&json);
    assert!(out.status.success(), "{}", show(&out));
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    // 5 users × 4 iterations; each: the form page, the POST and its 303, the orders.
    assert_eq!(summary["iterations"]["completed"], 20, "{}", show(&out));
    assert_eq!(summary["iterations"]["failed"], 0);
    assert_eq!(summary["requests"], 80);
    assert_eq!(summary["errors"], 0);
    assert_eq!(target.served(), 80);
    assert_eq!(target.served_path("/site/login"), 40);
    assert_eq!(target.served_path("/site/account"), 20);
    assert_eq!(target.served_path("/site/orders"), 20);
    assert_eq!(target.served_path("site.csrf.issued"), 20);
    assert_eq!(target.served_path("site.logins"), 20);
    assert_eq!(target.served_path("site.csrf.rejected"), 0);
    let ops: Vec<String> = summary["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("{}={}", o["operation"].as_str().unwrap(), o["requests"]))
        .collect();
    for want in ["login page=20", "sign in=40", "orders=20"] {
        assert!(ops.contains(&want.to_string()), "{ops:?}");
    }
}
