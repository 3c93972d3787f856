//! Server-side IRC lines: IRCv3 tag escaping and the fixed replies Twitch sends.
//!
//! Lines are formatted directly (no `IRCMessage` round trip) because the generator builds
//! thousands per second; every tag value goes through [`escape_tag_value`], and the unit tests
//! check the results with twitch-irc's own parser. Lines returned here carry no CRLF; the
//! connection writer appends it.

use std::fmt::Write;

/// The server name Twitch uses as prefix and PING/PONG argument.
pub const SERVER: &str = "tmi.twitch.tv";

/// Text of the NOTICE Twitch sends when a message exceeds the rate limits.
pub const RATELIMIT_TEXT: &str =
    "Your message was not sent because you are sending messages too quickly.";

/// Text of the NOTICE Twitch sends for a duplicate message.
pub const DUPLICATE_TEXT: &str =
    "Your message was not sent because it is identical to the previous one you sent, less than 30 seconds ago.";

/// Escapes a tag value per IRCv3 (`;` `\:`, space `\s`, `\` `\\`, CR `\r`, LF `\n`).
pub fn escape_tag_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    push_escaped_tag_value(&mut out, raw);
    out
}

/// Appends `raw` to `out`, escaped as an IRCv3 tag value.
pub fn push_escaped_tag_value(out: &mut String, raw: &str) {
    for c in raw.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Makes a chat text safe as a trailing parameter: CR, LF and NUL would end or corrupt the line.
pub fn sanitize_trailing(text: &str) -> String {
    text.chars()
        .map(|c| {
            if matches!(c, '\r' | '\n' | '\0') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The `user!user@user.tmi.twitch.tv` prefix of a user.
pub fn user_prefix(login: &str) -> String {
    format!("{login}!{login}@{login}.{SERVER}")
}

/// `:tmi.twitch.tv CAP * ACK :<caps>`
pub fn cap_ack(caps: &str) -> String {
    format!(":{SERVER} CAP * ACK :{caps}")
}

/// `:tmi.twitch.tv CAP * LS :<all caps>`
pub fn cap_ls() -> String {
    format!(":{SERVER} CAP * LS :twitch.tv/tags twitch.tv/commands twitch.tv/membership")
}

/// The numerics 001..004 and the MOTD (375, 372, 376) Twitch sends after NICK.
pub fn welcome(login: &str) -> Vec<String> {
    vec![
        format!(":{SERVER} 001 {login} :Welcome, GLHF!"),
        format!(":{SERVER} 002 {login} :Your host is {SERVER}"),
        format!(":{SERVER} 003 {login} :This server is rather new"),
        format!(":{SERVER} 004 {login} :-"),
        format!(":{SERVER} 375 {login} :-"),
        format!(":{SERVER} 372 {login} :You are in a maze of twisty passages, all alike."),
        format!(":{SERVER} 376 {login} :>"),
    ]
}

/// GLOBALUSERSTATE for the logged-in account.
pub fn global_userstate(login: &str, user_id: &str) -> String {
    let mut line = String::with_capacity(160);
    line.push_str("@badge-info=;badges=;color=#8A2BE2;display-name=");
    push_escaped_tag_value(&mut line, login);
    let _ = write!(
        line,
        ";emote-sets=0;user-id={user_id};user-type= :{SERVER} GLOBALUSERSTATE"
    );
    line
}

/// The JOIN echo.
pub fn join_echo(login: &str, channel: &str) -> String {
    format!(":{} JOIN #{channel}", user_prefix(login))
}

/// The PART echo.
pub fn part_echo(login: &str, channel: &str) -> String {
    format!(":{} PART #{channel}", user_prefix(login))
}

/// 353 + 366 (NAMES) sent after a JOIN when the membership capability was requested.
pub fn names(login: &str, channel: &str) -> Vec<String> {
    vec![
        format!(":{login}.{SERVER} 353 {login} = #{channel} :{login}"),
        format!(":{login}.{SERVER} 366 {login} #{channel} :End of /NAMES list"),
    ]
}

/// USERSTATE of the bot in `channel` (moderator badge when `is_mod`).
pub fn userstate(login: &str, channel: &str, is_mod: bool) -> String {
    let (badges, mod_flag, user_type) = if is_mod {
        ("moderator/1", 1, "mod")
    } else {
        ("", 0, "")
    };
    let mut line = String::with_capacity(200);
    let _ = write!(
        line,
        "@badge-info=;badges={badges};color=#8A2BE2;display-name="
    );
    push_escaped_tag_value(&mut line, login);
    let _ = write!(
        line,
        ";emote-sets=0;mod={mod_flag};subscriber=0;user-type={user_type} :{SERVER} USERSTATE #{channel}"
    );
    line
}

/// Full ROOMSTATE of a channel with all modes off.
pub fn roomstate(channel: &str, room_id: &str) -> String {
    format!(
        "@emote-only=0;followers-only=-1;r9k=0;rituals=0;room-id={room_id};slow=0;subs-only=0 :{SERVER} ROOMSTATE #{channel}"
    )
}

/// `@msg-id=<id> :tmi.twitch.tv NOTICE #<channel> :<text>`
pub fn notice(msg_id: &str, channel: &str, text: &str) -> String {
    format!("@msg-id={msg_id} :{SERVER} NOTICE #{channel} :{text}")
}

/// `PING :tmi.twitch.tv`
pub fn server_ping() -> String {
    format!("PING :{SERVER}")
}

/// The PONG answering a client PING with `argument`.
pub fn pong(argument: &str) -> String {
    format!(":{SERVER} PONG {SERVER} :{argument}")
}

/// `:tmi.twitch.tv RECONNECT`
pub fn reconnect() -> String {
    format!(":{SERVER} RECONNECT")
}

/// 421 for a command the sim does not know.
pub fn unknown_command(login: &str, command: &str) -> String {
    format!(":{SERVER} 421 {login} {command} :Unknown command")
}

#[cfg(test)]
mod tests {
    use super::*;
    use twitch_irc::message::{IRCMessage, ServerMessage};

    fn parse(line: &str) -> ServerMessage {
        let irc = IRCMessage::parse(line).expect("parses as IRC");
        ServerMessage::try_from(irc).expect("parses as a Twitch message")
    }

    #[test]
    fn escaped_tag_values_round_trip_through_twitch_irc() {
        let nasty = "a;b c\\d\re\nf=g,h ünï 👉";
        let line = format!(
            "@msg-id={};x=1 :{SERVER} NOTICE #c :t",
            escape_tag_value(nasty)
        );
        let parsed = IRCMessage::parse(&line).expect("parses");
        assert_eq!(parsed.tags.0.get("msg-id").map(String::as_str), Some(nasty));
        assert_eq!(escape_tag_value("a b;c"), "a\\sb\\:c");
    }

    #[test]
    fn fixed_replies_parse_to_their_twitch_messages() {
        assert!(matches!(
            parse(&userstate("bot", "chan", true)),
            ServerMessage::UserState(m) if m.badges.iter().any(|b| b.name == "moderator")
        ));
        assert!(matches!(
            parse(&roomstate("chan", "1234")),
            ServerMessage::RoomState(m) if m.channel_id == "1234"
        ));
        assert!(matches!(
            parse(&global_userstate("bot", "42")),
            ServerMessage::GlobalUserState(m) if m.user_id == "42"
        ));
        assert!(matches!(
            parse(&notice("msg_ratelimit", "chan", RATELIMIT_TEXT)),
            ServerMessage::Notice(m) if m.message_id.as_deref() == Some("msg_ratelimit")
        ));
        assert!(matches!(
            parse(&join_echo("bot", "chan")),
            ServerMessage::Join(_)
        ));
        assert!(matches!(
            parse(&part_echo("bot", "chan")),
            ServerMessage::Part(_)
        ));
        assert!(
            matches!(parse(&pong("x")), ServerMessage::Pong(m) if m.source.params.get(1).map(String::as_str) == Some("x"))
        );
        assert!(matches!(parse(&server_ping()), ServerMessage::Ping(_)));
        assert!(matches!(parse(&reconnect()), ServerMessage::Reconnect(_)));
    }

    #[test]
    fn sanitize_removes_line_breaks() {
        assert_eq!(sanitize_trailing("a\r\nb\0"), "a  b ");
    }
}
