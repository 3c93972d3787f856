//! The HTTP API's OpenAPI 3.1 description, generated from the handlers.
//!
//! Every route is registered through utoipa-axum's `routes!` (in [`super`]), which takes the
//! path, the methods and the description from the handler's `#[utoipa::path]`: the router and
//! this document come from the same list, so a route cannot be served without its entry. What
//! this module adds is what holds for the whole API: the title and version, the bearer scheme
//! of the admin token (and the 401 every token-protected operation may answer), and the
//! bodies the handlers answer with that have no Rust type of their own elsewhere.
//!
//! The document is served at `GET /openapi.json` (no token) and committed as
//! `docs/openapi.json` (`firehose openapi > docs/openapi.json`); `tests/openapi.rs` fails when
//! the two differ, when a route answers without an entry, or when an entry's security does not
//! match what the route enforces.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, RefOr, ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

/// The name of the admin token's security scheme in the document.
pub const ADMIN_TOKEN: &str = "admin_token";

/// The API's description, with everything [`super`] registers.
pub fn document() -> OpenApi {
    let mut api = super::described_routes().into_openapi();
    api.info = InfoBuilder::new()
        .title("firehose")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(DESCRIPTION))
        .license(Some(LicenseBuilder::new().name("Apache-2.0").build()))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        ADMIN_TOKEN,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    // Named only by the 401 added below and by path parameters, which utoipa does not collect.
    components
        .schemas
        .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
    components
        .schemas
        .insert(RuleKind::name().into_owned(), RuleKind::schema());
    for item in api.paths.paths.values_mut() {
        for operation in operations(item) {
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                operation
                    .responses
                    .responses
                    .entry("401".into())
                    .or_insert_with(|| RefOr::T(unauthorized()));
            }
        }
    }
    api
}

/// [`document`] as pretty JSON with a final newline, as committed in `docs/openapi.json`.
pub fn document_json() -> String {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| match document().to_pretty_json() {
        Ok(mut json) => {
            json.push('\n');
            json
        }
        // The document is built from types that always serialise; say so if one did not.
        Err(e) => format!("{{\"error\": \"the OpenAPI document does not serialise: {e}\"}}\n"),
    })
    .clone()
}

const DESCRIPTION: &str = "The HTTP endpoints of a firehose node: health and readiness for \
supervisors, Prometheus metrics, the admin API (channels, rules, the state store, users' data, \
Twitch onboarding) and Twitch's callbacks (OAuth redirect, EventSub webhooks). Operations that \
name the `admin_token` scheme need `Authorization: Bearer <token>` (the scheme is \
case-insensitive); without a configured token they answer 401. With `http.admin_listen` set, \
`/v1/...`, `/metrics` and this document are served on that address (with `/healthz` and \
`/readyz`) and no longer on `http.listen`.";

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn unauthorized() -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(
            "Missing or wrong bearer token, or no admin token configured (the admin API is then off). \
             Answered with `WWW-Authenticate: Bearer`.",
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                ))))
                .build(),
        )
        .build()
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json"))
)]
pub(super) async fn serve_document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

/// Every refusal: what is wrong, in words.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// `POST /v1/channels/{login}`: what the join did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JoinAnswer {
    pub channel: String,
    pub outcome: crate::channel::JoinOutcome,
}

/// `DELETE /v1/channels/{login}`: the channel is parted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartAnswer {
    pub channel: String,
    /// Always `true`.
    pub parted: bool,
}

/// `POST /v1/store/flush`: everything pending is written.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlushAnswer {
    /// Always `true`.
    pub flushed: bool,
}

/// `DELETE /v1/users/...` when the store part failed: the error and what was done (the
/// request is safe to repeat).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForgetUserFailed {
    pub error: String,
    /// What was removed before the store failed (absent when nothing was tried: the service
    /// is shutting down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done: Option<crate::app::users::ForgetUserReport>,
}

/// The kinds of rule items, as paths name them.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Commands,
    Keywords,
    Timers,
    Filters,
}

/// One rule item: the shape the path's `kind` names. The body's `name` may be left out (the
/// path's is taken); when given it must equal the path's.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RuleItem {
    Command(crate::engine::rules::CommandRule),
    Keyword(crate::engine::rules::KeywordRule),
    Timer(crate::engine::rules::TimerRule),
    Filter(crate::engine::rules::FilterRule),
}

/// A rule edit's answer: the channel, the item (under its kind's key, e.g.
/// `"commands": "!discord"`) and what happened (`created`, `replaced` or `deleted`: `true`).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct RuleEdited {
    /// `twitch` or `discord`.
    pub platform: String,
    /// The Twitch login or the Discord channel id.
    pub channel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commands: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keywords: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timers: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protected_operation_names_the_admin_token_and_may_answer_401() {
        let api = document();
        let json = serde_json::to_value(&api).expect("serialises");
        assert_eq!(json["openapi"], "3.1.0");
        let mut protected = 0;
        for (path, item) in json["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                let secured = operation["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get(ADMIN_TOKEN).is_some()));
                let channel_list = path == "/v1/channels" && method == "get";
                assert_eq!(
                    secured,
                    path.starts_with("/v1/") && !channel_list,
                    "{method} {path}: only the /v1 routes but the channel list need the token"
                );
                if secured {
                    protected += 1;
                    assert!(
                        operation["responses"]["401"].is_object(),
                        "{method} {path} documents its 401"
                    );
                }
            }
        }
        assert!(protected >= 14, "found {protected} protected operations");
    }

    #[test]
    fn every_schema_reference_resolves() {
        let json = serde_json::to_value(document()).expect("serialises");
        let mut refs = Vec::new();
        collect_refs(&json, &mut refs);
        assert!(refs.len() > 20, "found {} references", refs.len());
        for reference in refs {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{reference} is not a schema reference"));
            assert!(
                json["components"]["schemas"][name].is_object(),
                "{reference} names no schema"
            );
        }
    }

    fn collect_refs(value: &serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                    into.push(r.clone());
                }
                map.values().for_each(|v| collect_refs(v, into));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
            _ => {}
        }
    }
}
