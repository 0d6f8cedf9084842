//! Signing in with the API token, and out.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::html::{esc, page};
use super::{Ui, COOKIE};

/// The sign-in form.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    token: String,
}

/// The sign-in page, with an optional error.
pub(crate) fn form(ui: &Ui, error: Option<&str>) -> Html<String> {
    let error = error.map_or(String::new(), |e| {
        format!("<div class=\"notice error\" id=\"error\">{}</div>", esc(e))
    });
    let body = format!(
        "<h1>Sign in</h1>{error}<p>This server needs its API token (<code>token</code> in camut.toml).</p>\
         <form method=\"post\" action=\"{}/login\" id=\"login-form\"><label>API token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" autofocus></label> \
         <button class=\"primary\" id=\"sign-in\">Sign in</button></form>",
        ui.base
    );
    page(ui, "Sign in", "sign-in", &body)
}

pub(crate) async fn form_page(State(ui): State<Ui>) -> Html<String> {
    form(&ui, None)
}

pub(crate) async fn sign_in(State(ui): State<Ui>, Form(f): Form<LoginForm>) -> Response {
    let Some(value) = ui.token.cookie_value() else {
        return Redirect::to(&format!("{}/campaigns", ui.base)).into_response();
    };
    if !ui.token.admits(&f.token) {
        tracing::warn!("console sign-in with a wrong token");
        let mut res = form(&ui, Some("wrong token")).into_response();
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        return res;
    }
    let cookie = format!(
        "{COOKIE}={}; Path={}; HttpOnly; SameSite=Strict",
        value, ui.base
    );
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&format!("{}/campaigns", ui.base)),
    )
        .into_response()
}

pub(crate) async fn sign_out(State(ui): State<Ui>) -> Response {
    let cookie = format!(
        "{COOKIE}=; Path={}; HttpOnly; SameSite=Strict; Max-Age=0",
        ui.base
    );
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to(&format!("{}/login", ui.base)),
    )
        .into_response()
}
