//! Property tests: arbitrary chat (including moderator commands with arbitrary arguments)
//! through the example rules never panics and never posts more than 500 characters.

use proptest::prelude::*;

use super::*;

fn text_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,120}",
        "(!nuke|!addcom|!editcom|!delcom|!permit|!filters|!hug|!roll|!google|!say|!echo) \\PC{0,60}",
        "(FREE|free|fréé|\u{0336}|http://|\\.com|twitch\\.tv|[A-Z]{3}|\\$\\(|\\)|/| ){0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_chat_never_panics_and_respects_500_chars(
        lines in proptest::collection::vec((text_strategy(), 0u8..6, 0u64..30), 1..25)
    ) {
        let mut s = example();
        let mut secs = 0;
        for (text, role, gap) in lines {
            secs += gap;
            let role = [Role::Everyone, Role::Subscriber, Role::Vip, Role::Moderator, Role::Broadcaster, Role::Everyone][usize::from(role)];
            let mut actions = say(&mut s, "user", role, &text, secs);
            actions.extend(tick(&mut s, secs));
            for action in &actions {
                if let Some(text) = action.chat_text() {
                    prop_assert!(text.chars().count() <= 500);
                }
            }
        }
    }
}
