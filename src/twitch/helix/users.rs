//! `GET /helix/users`: logins to user ids, 100 a request (Helix's limit), parsed with
//! `twitch_api`'s `User`.

use reqwest::Method;
use serde::Deserialize;

use super::call::{HelixCaller, HelixError};

/// Logins per request (Helix's maximum).
pub const LOGINS_PER_REQUEST: usize = 100;

#[derive(Deserialize)]
struct UsersPage {
    data: Vec<twitch_api::helix::users::User>,
}

/// (login, user id) for each of `logins` that exists; unknown logins are left out.
pub async fn user_ids(
    caller: &HelixCaller,
    logins: &[String],
) -> Result<Vec<(String, String)>, HelixError> {
    let mut out = Vec::new();
    for chunk in logins.chunks(LOGINS_PER_REQUEST) {
        let query: Vec<(&str, String)> = chunk.iter().map(|l| ("login", l.clone())).collect();
        let page: Option<UsersPage> = caller.call(Method::GET, "/users", &query, None).await?;
        for user in page.map(|p| p.data).unwrap_or_default() {
            out.push((
                user.login.to_string().to_ascii_lowercase(),
                user.id.to_string(),
            ));
        }
    }
    Ok(out)
}
