//! Permission levels: who may run a command or is exempt from a filter.
//!
//! The platform gives each user a [`Role`]; a channel adds its own *regulars* list. A regular
//! sits between subscriber and VIP: trusted by the channel's own moderators (so above a paying
//! subscriber) but with no platform powers (so below a VIP the broadcaster picked). The order is
//! `everyone < subscriber < regular < vip < moderator < broadcaster`.

use std::collections::BTreeSet;

use super::{ChatUser, Role};

/// A permission level, ordered from least to most trusted.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Everyone,
    Subscriber,
    Regular,
    Vip,
    Moderator,
    Broadcaster,
}

impl Level {
    /// The level a platform role grants on its own.
    pub fn from_role(role: Role) -> Self {
        match role {
            Role::Everyone => Level::Everyone,
            Role::Subscriber => Level::Subscriber,
            Role::Vip => Level::Vip,
            Role::Moderator => Level::Moderator,
            Role::Broadcaster => Level::Broadcaster,
        }
    }

    /// The effective level of `user`, raised to [`Level::Regular`] when the channel lists them.
    /// `regulars` holds lower-case logins.
    pub fn of(user: &ChatUser, regulars: &BTreeSet<String>) -> Self {
        let base = Level::from_role(user.role);
        if base < Level::Regular && is_regular(&user.login, regulars) {
            Level::Regular
        } else {
            base
        }
    }
}

fn is_regular(login: &str, regulars: &BTreeSet<String>) -> bool {
    if regulars.is_empty() {
        return false;
    }
    if login.bytes().any(|b| b.is_ascii_uppercase()) {
        regulars.contains(&login.to_ascii_lowercase())
    } else {
        regulars.contains(login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(login: &str, role: Role) -> ChatUser {
        ChatUser {
            login: login.into(),
            role,
            ..ChatUser::default()
        }
    }

    #[test]
    fn levels_are_ordered_and_regulars_are_raised_only_upwards() {
        let regulars = BTreeSet::from(["reggie".to_string()]);
        let table = [
            (user("anon", Role::Everyone), Level::Everyone),
            (user("reggie", Role::Everyone), Level::Regular),
            (user("ReGGie", Role::Everyone), Level::Regular),
            (user("reggie", Role::Subscriber), Level::Regular),
            (user("reggie", Role::Vip), Level::Vip),
            (user("reggie", Role::Moderator), Level::Moderator),
            (user("sub", Role::Subscriber), Level::Subscriber),
            (user("boss", Role::Broadcaster), Level::Broadcaster),
        ];
        for (u, want) in table {
            assert_eq!(Level::of(&u, &regulars), want, "{u:?}");
        }
        assert!(Level::Subscriber < Level::Regular && Level::Regular < Level::Vip);
    }
}
