//! The console's layout and the bits every page shares: the head, the navigation with the
//! logout form, the one-time message, refusals as pages. Everything shown is escaped by maud;
//! nothing from a request or from chat is ever put into HTML unescaped.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::session::{Session, Who};

/// A whole page: `title`, the signed-in `session` (None: the login page), `body`.
pub fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    let flash = session.and_then(Session::take_flash);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · firehose" }
                link rel="stylesheet" href="/ui/assets/console.css";
                script src="/ui/assets/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header {
                    span class="brand" { "firehose" }
                    @if let Some(session) = session {
                        nav aria-label="Main" {
                            a href="/ui/channels" { "Channels" }
                        }
                        span class="who" { (who_label(&session.who)) }
                        form method="post" action="/ui/logout" class="inline" {
                            (csrf_field(session))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    div role="status" aria-live="polite" id="flash" {
                        @if let Some(message) = flash {
                            p class="flash" { (message) }
                        }
                    }
                    (body)
                }
            }
        }
    }
}

fn who_label(who: &Who) -> String {
    match who {
        Who::Admin => "operator (admin token)".into(),
        Who::Twitch { login, .. } => format!("{login} (Twitch)"),
    }
}

/// The hidden CSRF field every form of a session carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A page as a response with `status`.
pub fn respond(status: StatusCode, page: Markup) -> Response {
    (status, Html(page.into_string())).into_response()
}

/// A refusal page (401, 403, 404, 400...) with a way back.
pub fn refused(status: StatusCode, title: &str, why: &str) -> Response {
    let page = layout(
        title,
        None,
        html! {
            h1 { (title) }
            p class="error" role="alert" { (why) }
            p { a href="/ui" { "Back to the console" } }
        },
    );
    respond(status, page)
}

/// A form field's error, tied to the field by `id` (`aria-describedby`).
pub fn field_error(id: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            pre class="field-error" id=(id) role="alert" { (error) }
        }
    }
}
