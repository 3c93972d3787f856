//! Whose chat messages the bot ignores: the accounts in `engine.ignore_users` (other bots) and
//! the bot's own account.
//!
//! [`IgnoreList`] is the configured list, checked by the router for every platform before a
//! message is admitted (so an ignored message takes no slot and never reaches the engine).
//! [`OwnAccount`] is how each platform recognises its own account; the platform checks it
//! where it knows who it is (IRC: `twitch.login` and the GLOBALUSERSTATE id; EventSub: the
//! validated token's user id; Discord: the READY user id) and hands the message to
//! [`super::Router::own_message`] instead of routing it.

use std::collections::HashSet;

use crate::engine::ChatUser;

/// `engine.ignore_users`, normalised: logins and user names in lower case, ids as they are.
#[derive(Debug, Clone, Default)]
pub struct IgnoreList {
    entries: HashSet<String>,
}

impl IgnoreList {
    pub fn new<S: AsRef<str>>(entries: &[S]) -> IgnoreList {
        IgnoreList {
            entries: entries
                .iter()
                .map(|e| e.as_ref().trim().to_ascii_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `user` is listed, by id or by login (case-insensitively).
    pub fn contains(&self, user: &ChatUser) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        if !user.id.is_empty() && self.entries.contains(&user.id) {
            return true;
        }
        if user.login.is_empty() {
            return false;
        }
        if user.login.bytes().any(|b| b.is_ascii_uppercase()) {
            self.entries.contains(&user.login.to_ascii_lowercase())
        } else {
            self.entries.contains(&user.login)
        }
    }
}

/// Whether `user` is the account whose login is `login` or whose id is `id`. Logins compare
/// case-insensitively (Twitch logins are lower case, display names are not; a login written
/// in another case in the config is still the same account).
pub fn is_account(user: &ChatUser, login: &str, id: Option<&str>) -> bool {
    (!login.is_empty() && user.login.eq_ignore_ascii_case(login))
        || id.is_some_and(|id| !id.is_empty() && user.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(login: &str, id: &str) -> ChatUser {
        ChatUser {
            id: id.to_string(),
            login: login.to_string(),
            display_name: login.to_string(),
            ..ChatUser::default()
        }
    }

    #[test]
    fn the_list_matches_logins_in_any_case_and_ids_exactly() {
        let list = IgnoreList::new(&["NightBot", "12345", " streamelements "]);
        assert!(list.contains(&user("nightbot", "1")));
        assert!(list.contains(&user("NIGHTBOT", "1")));
        assert!(list.contains(&user("streamelements", "2")));
        assert!(list.contains(&user("someone", "12345")));
        assert!(!list.contains(&user("nightbot2", "123456")));
        assert!(!list.contains(&user("", "")));
        assert!(!IgnoreList::new::<&str>(&[]).contains(&user("nightbot", "12345")));
    }

    #[test]
    fn the_own_account_is_recognised_by_login_or_id() {
        assert!(is_account(&user("FireHoseBot", "9"), "firehosebot", None));
        assert!(is_account(&user("renamed", "9"), "firehosebot", Some("9")));
        assert!(!is_account(&user("viewer", "10"), "firehosebot", Some("9")));
        // An unknown id (empty) matches nobody, not every user without an id.
        assert!(!is_account(&user("viewer", ""), "firehosebot", Some("")));
        assert!(!is_account(&user("viewer", ""), "", None));
    }
}
