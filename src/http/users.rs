//! `DELETE /v1/users/{platform}/{user_id}`: deletes one user's data on one platform everywhere
//! the service keeps it (see `app::users`) and answers with what was removed, per place and
//! kind, and the channels touched. 400 for an unknown platform or a malformed user id, 503
//! (with what was done) when the store part failed: the request is safe to repeat.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error_response;
use super::openapi::ForgetUserFailed;
use crate::app::users::ForgetUserError;
use crate::app::Core;

/// Deletes one user's data on one platform everywhere the service keeps it.
#[utoipa::path(
    delete,
    path = "/v1/users/{platform}/{user_id}",
    tag = "users",
    params(
        ("platform" = String, Path, description = "`twitch` or `discord`."),
        ("user_id" = String, Path, description = "The platform's user id (digits)."),
    ),
    responses(
        (status = 200, description = "What was removed, per place and kind, and the channels touched.", body = crate::app::users::ForgetUserReport),
        (status = 400, description = "Unknown platform or malformed user id.", body = super::openapi::ErrorBody),
        (status = 503, description = "The store part failed (with what was done; safe to repeat), or the service is shutting down.", body = super::openapi::ForgetUserFailed),
    ),
    security(("admin_token" = [])),
)]
pub(super) async fn delete_user(
    State(core): State<Arc<Core>>,
    Path((platform, user_id)): Path<(String, String)>,
) -> Response {
    match core.forget_user(&platform, &user_id).await {
        Ok(report) => Json(report).into_response(),
        Err(e @ (ForgetUserError::UnknownPlatform(_) | ForgetUserError::BadUserId(_))) => {
            error_response(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(ForgetUserError::Store { error, report }) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ForgetUserFailed {
                error,
                done: Some(*report),
            }),
        )
            .into_response(),
        Err(e @ ForgetUserError::ShuttingDown) => {
            error_response(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    }
}
