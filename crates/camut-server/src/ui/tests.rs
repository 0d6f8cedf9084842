//! The console's pages on a store of 100 campaigns and 1,000 drones, escaping, and the
//! sign-in checks (the Host and Origin checks are tested in `access`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;

use super::campaign::{live_html, DRONE_ROWS};
use super::campaigns::campaigns_page;
use super::html::PER_PAGE;
use super::{open_path, Ui};
use crate::auth::{hex as cookie_value, same};
use crate::core::{Core, CoreParts};
use crate::state::DroneState;
use crate::store::{DroneRow, Store};

fn console(name: &str) -> Ui {
    let dir = std::env::temp_dir().join(format!("camut-ui-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let core = Core::new(CoreParts {
        store: Store::open(&dir).unwrap(),
        deployers: BTreeMap::new(),
        default_deployer: "local".into(),
        public_url: "http://127.0.0.1:1".into(),
        inspector: Arc::new(crate::testing::Fake),
        drone_timeout: Duration::from_secs(10),
        server_id: "camut-test".into(),
        default_tsdb: None,
    });
    Ui {
        api: crate::api::Api(core.clone()),
        core,
        token: crate::auth::ApiToken::default(),
        base: Arc::from("/ui"),
        access: Arc::new(super::Access::new(
            "127.0.0.1:7200".parse().unwrap(),
            false,
            None,
            &[],
        )),
    }
}

/// Runs a future to its end on a runtime of its own.
fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn body(res: Response) -> String {
    let bytes = block(axum::body::to_bytes(res.into_body(), usize::MAX)).unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn stays_usable_with_100_campaigns_and_1000_drones() {
    let ui = console("scale");
    for i in 0..100 {
        block(
            ui.core
                .create("c.js", &format!("c{i:03} 1000"), &Default::default()),
        )
        .unwrap();
    }
    let rows = (0..1000u32)
        .map(|i| {
            let (state, error) = match i {
                500 => (DroneState::Lost, "no message for 10s"),
                _ => (DroneState::Ready, ""),
            };
            DroneRow {
                id: format!("d{i:04}"),
                campaign: "c042".into(),
                index: i,
                state,
                error: error.into(),
            }
        })
        .collect();
    block(ui.core.store.upsert_drones(rows)).unwrap();
    let began = Instant::now();
    let list = body(campaigns_page(&ui, 1, None, None));
    assert_eq!(list.matches("data-campaign=").count(), PER_PAGE as usize);
    assert!(list.contains("100 campaigns") && list.contains("page 1 of 2"));
    let second = body(campaigns_page(&ui, 2, None, None));
    assert_eq!(second.matches("data-campaign=").count(), 50);
    assert!(second.contains("c000"), "the oldest is on the last page");
    let live = live_html(&ui, "c042");
    assert!(live.contains("1000 drones"), "counted");
    assert_eq!(
        live.matches("<code>d").count(),
        DRONE_ROWS,
        "listed: a page of them"
    );
    assert!(live.contains("950 more drones not listed"));
    let first_row = live.find("<code>d").unwrap();
    assert_eq!(
        &live[first_row..first_row + 11],
        "<code>d0500",
        "problems first"
    );
    assert!(live.len() < 100_000, "{} bytes", live.len());
    assert!(list.len() < 100_000, "{} bytes", list.len());
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
}

#[test]
fn compile_errors_and_escaping() {
    let ui = console("errors");
    let res = campaigns_page(
        &ui,
        1,
        Some((false, "invalid source: x.js:1:4: <bad>".into())),
        None,
    );
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let html = body(res);
    assert!(html.contains("x.js:1:4: &lt;bad&gt;"), "{html}");
    block(ui.core.create("c.js", "a<b 1", &Default::default())).unwrap();
    let html = body(campaigns_page(&ui, 1, None, None));
    assert!(html.contains("a&lt;b") && !html.contains("a<b"));
    assert!(html.contains("/ui/campaigns/a%3Cb"));
}

#[test]
fn cookie_checks() {
    assert_eq!(cookie_value("a;b"), "613b62");
    assert!(same("abc", "abc"));
    assert!(!same("abc", "abd"));
    assert!(!same("abc", "ab"));
}

#[test]
fn only_sign_in_and_assets_are_open() {
    for open in [
        "/login",
        "/ui/login",
        "/ui/assets/console.js",
        "/assets/console.css",
    ] {
        assert!(open_path("/ui", open), "{open}");
    }
    for closed in [
        "/campaigns/login",
        "/ui/campaigns/login",
        "/ui/jobs",
        "/ui/assets/../jobs",
        "/ui/campaigns/assets/x",
    ] {
        assert!(!open_path("/ui", closed), "{closed}");
    }
}
