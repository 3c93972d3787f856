//! Builds the chat lines the fire hose emits: PRIVMSG with Twitch's full tag set, and the
//! USERNOTICE / CLEARCHAT / CLEARMSG events, each parseable by twitch-irc into its typed message.

use super::content::Chatter;
use super::lines::{push_escaped_tag_value, sanitize_trailing, user_prefix, SERVER};
use rand::Rng;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The message a reply points at.
#[derive(Debug, Clone)]
pub struct ReplyParent {
    pub msg_id: String,
    pub user_id: String,
    pub user_login: String,
    pub display_name: String,
    pub body: String,
}

/// Everything that goes into one PRIVMSG line.
#[derive(Debug, Clone)]
pub struct Privmsg<'a> {
    pub channel: &'a str,
    pub room_id: u64,
    pub chatter: &'a Chatter,
    pub text: &'a str,
    pub emotes: &'a str,
    pub id: &'a str,
    pub first_msg: bool,
    pub returning_chatter: bool,
    pub reply: Option<&'a ReplyParent>,
}

/// Milliseconds since the Unix epoch (the `tmi-sent-ts` tag).
pub fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// A random uuid-like (v4 layout) message id.
pub fn new_message_id(rng: &mut impl Rng) -> String {
    let v: u128 = rng.random();
    let v = (v & !(0xf << 76)) | (0x4 << 76);
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Appends the user tags shared by PRIVMSG and USERNOTICE (`badge-info` .. `display-name`).
fn push_user_tags(line: &mut String, chatter: &Chatter) {
    let _ = write!(
        line,
        "@badge-info={};badges={};color={};display-name=",
        chatter.badge_info(),
        chatter.badges(),
        chatter.color
    );
    push_escaped_tag_value(line, &chatter.display_name);
}

fn user_type(chatter: &Chatter) -> &'static str {
    if chatter.is_mod {
        "mod"
    } else {
        ""
    }
}

/// One PRIVMSG line with every tag Twitch sends (tags in Twitch's alphabetical order).
pub fn privmsg_line(m: &Privmsg<'_>) -> String {
    let c = m.chatter;
    let mut line = String::with_capacity(420 + m.text.len());
    push_user_tags(&mut line, c);
    let _ = write!(
        line,
        ";emotes={};first-msg={};flags=;id={};mod={}",
        m.emotes,
        u8::from(m.first_msg),
        m.id,
        u8::from(c.is_mod)
    );
    if let Some(parent) = m.reply {
        line.push_str(";reply-parent-display-name=");
        push_escaped_tag_value(&mut line, &parent.display_name);
        line.push_str(";reply-parent-msg-body=");
        push_escaped_tag_value(&mut line, &parent.body);
        let _ = write!(
            line,
            ";reply-parent-msg-id={};reply-parent-user-id={};reply-parent-user-login={}",
            parent.msg_id, parent.user_id, parent.user_login
        );
    }
    let _ = write!(
        line,
        ";returning-chatter={};room-id={};subscriber={};tmi-sent-ts={};turbo=0;user-id={};user-type={}",
        u8::from(m.returning_chatter),
        m.room_id,
        u8::from(c.sub_months > 0),
        now_millis(),
        c.user_id,
        user_type(c)
    );
    if c.is_vip {
        line.push_str(";vip=1");
    }
    let _ = write!(
        line,
        " :{} PRIVMSG #{} :{}",
        user_prefix(&c.login),
        m.channel,
        sanitize_trailing(m.text)
    );
    line
}

/// A random event line for `channel`: USERNOTICE (sub, resub, subgift, raid, announcement),
/// CLEARCHAT (timeout, ban) or CLEARMSG of `recent_msg` when there is one.
pub fn event_line(
    rng: &mut impl Rng,
    channel: &str,
    room_id: u64,
    chatter: &Chatter,
    other: &Chatter,
    recent_msg: Option<&(String, String)>,
) -> String {
    match rng.random_range(0..10) {
        0..=5 => usernotice_line(rng, channel, room_id, chatter, other),
        6 | 7 => clearchat_line(rng, channel, room_id, chatter),
        _ => match recent_msg {
            Some((msg_id, body)) => clearmsg_line(channel, room_id, chatter, msg_id, body),
            None => clearchat_line(rng, channel, room_id, chatter),
        },
    }
}

/// A USERNOTICE of a random kind.
pub fn usernotice_line(
    rng: &mut impl Rng,
    channel: &str,
    room_id: u64,
    chatter: &Chatter,
    other: &Chatter,
) -> String {
    let months = rng.random_range(1..=48u32);
    let plan_name = format!("Channel Subscription ({channel})");
    let name = &chatter.display_name;
    let (kind, params, system_msg, text): (&str, String, String, Option<&str>) = match rng
        .random_range(0..5)
    {
        0 => (
            "sub",
            sub_params(1, &plan_name),
            format!("{name} subscribed at Tier 1."),
            None,
        ),
        1 => (
            "resub",
            sub_params(months, &plan_name),
            format!("{name} subscribed at Tier 1. They've subscribed for {months} months!"),
            Some("still here PogChamp"),
        ),
        2 => {
            let mut p = format!(
                    "msg-param-gift-months=1;msg-param-months={months};msg-param-recipient-display-name="
                );
            push_escaped_tag_value(&mut p, &other.display_name);
            let _ = write!(
                    p,
                    ";msg-param-recipient-id={};msg-param-recipient-user-name={};msg-param-sub-plan-name=",
                    other.user_id, other.login
                );
            push_escaped_tag_value(&mut p, &plan_name);
            p.push_str(";msg-param-sub-plan=1000");
            (
                "subgift",
                p,
                format!("{name} gifted a Tier 1 sub to {}!", other.display_name),
                None,
            )
        }
        3 => {
            let viewers = rng.random_range(2..20_000u32);
            raid_notice(chatter, viewers)
        }
        _ => (
            "announcement",
            "msg-param-color=PRIMARY".to_string(),
            String::new(),
            Some("remember to hydrate; be nice in chat"),
        ),
    };
    notice_line(
        rng,
        channel,
        room_id,
        chatter,
        (kind, &params, &system_msg, text),
    )
}

/// The parts of a raid USERNOTICE: `raider` brings `viewers` viewers.
fn raid_notice(
    raider: &Chatter,
    viewers: u32,
) -> (&'static str, String, String, Option<&'static str>) {
    let name = &raider.display_name;
    let mut p = String::from("msg-param-displayName=");
    push_escaped_tag_value(&mut p, name);
    let _ = write!(
        p,
        ";msg-param-login={};msg-param-profileImageURL=https://static-cdn.jtvnw.net/jtv_user_pictures/{}-profile_image-70x70.png;msg-param-viewerCount={viewers}",
        raider.login, raider.user_id
    );
    (
        "raid",
        p,
        format!("{viewers} raiders from {name} have joined!"),
        None,
    )
}

/// The USERNOTICE announcing that `raider` raids `channel` with `viewers` viewers.
pub fn raid_line(
    rng: &mut impl Rng,
    channel: &str,
    room_id: u64,
    raider: &Chatter,
    viewers: u32,
) -> String {
    let (kind, params, system_msg, text) = raid_notice(raider, viewers);
    notice_line(
        rng,
        channel,
        room_id,
        raider,
        (kind, &params, &system_msg, text),
    )
}

/// A USERNOTICE line of `chatter` with (msg-id, msg-param tags, system-msg, text).
fn notice_line(
    rng: &mut impl Rng,
    channel: &str,
    room_id: u64,
    chatter: &Chatter,
    (kind, params, system_msg, text): (&str, &str, &str, Option<&str>),
) -> String {
    let mut line = String::with_capacity(600);
    push_user_tags(&mut line, chatter);
    let _ = write!(
        line,
        ";emotes=;flags=;id={};login={};mod={};msg-id={kind};{params};room-id={room_id};subscriber={};system-msg=",
        new_message_id(rng),
        chatter.login,
        u8::from(chatter.is_mod),
        u8::from(chatter.sub_months > 0)
    );
    push_escaped_tag_value(&mut line, system_msg);
    let _ = write!(
        line,
        ";tmi-sent-ts={};user-id={};user-type={} :{SERVER} USERNOTICE #{channel}",
        now_millis(),
        chatter.user_id,
        user_type(chatter)
    );
    if let Some(text) = text {
        let _ = write!(line, " :{text}");
    }
    line
}

fn sub_params(months: u32, plan_name: &str) -> String {
    let mut p = format!(
        "msg-param-cumulative-months={months};msg-param-months=0;msg-param-should-share-streak=0;msg-param-sub-plan-name="
    );
    push_escaped_tag_value(&mut p, plan_name);
    p.push_str(";msg-param-sub-plan=1000");
    p
}

/// A CLEARCHAT: mostly timeouts, sometimes a permanent ban.
pub fn clearchat_line(rng: &mut impl Rng, channel: &str, room_id: u64, target: &Chatter) -> String {
    let duration = if rng.random_bool(0.8) {
        format!(
            "ban-duration={};",
            [1, 10, 60, 150, 600][rng.random_range(0..5)]
        )
    } else {
        String::new()
    };
    format!(
        "@{duration}room-id={room_id};target-user-id={};tmi-sent-ts={} :{SERVER} CLEARCHAT #{channel} :{}",
        target.user_id,
        now_millis(),
        target.login
    )
}

/// A CLEARMSG deleting one earlier message.
pub fn clearmsg_line(
    channel: &str,
    room_id: u64,
    sender: &Chatter,
    target_msg_id: &str,
    body: &str,
) -> String {
    format!(
        "@login={};room-id={room_id};target-msg-id={target_msg_id};tmi-sent-ts={} :{SERVER} CLEARMSG #{channel} :{}",
        sender.login,
        now_millis(),
        sanitize_trailing(body)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use twitch_irc::message::{IRCMessage, ServerMessage};

    fn parse(line: &str) -> ServerMessage {
        let irc = IRCMessage::parse(line).expect("valid IRC");
        ServerMessage::try_from(irc).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    #[test]
    fn privmsg_with_reply_parses_with_all_tags() {
        let chatter = Chatter::derive(5, 0);
        let parent = ReplyParent {
            msg_id: "p-1".into(),
            user_id: "77".into(),
            user_login: "someone".into(),
            display_name: "Some One".into(),
            body: "hi; there \\ back".into(),
        };
        let line = privmsg_line(&Privmsg {
            channel: "chan",
            room_id: 5,
            chatter: &chatter,
            text: "@someone Kappa hi",
            emotes: "25:9-13",
            id: "m-1",
            first_msg: true,
            returning_chatter: false,
            reply: Some(&parent),
        });
        let ServerMessage::Privmsg(m) = parse(&line) else {
            panic!("not a privmsg: {line}");
        };
        assert_eq!(m.channel_login, "chan");
        assert_eq!(m.message_id, "m-1");
        assert_eq!(m.sender.login, chatter.login);
        assert_eq!(m.emotes[0].code, "Kappa");
        let reply = m.reply_parent.expect("reply parent");
        assert_eq!(reply.message_text, "hi; there \\ back");
        assert_eq!(reply.reply_parent_user.name, "Some One");
        assert_eq!(
            m.source.tags.0.get("first-msg").map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn events_parse_to_their_typed_messages() {
        let mut rng = SmallRng::seed_from_u64(11);
        let (a, b) = (Chatter::derive(9, 1), Chatter::derive(9, 2));
        let recent = ("m-9".to_string(), "gone; soon".to_string());
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..300 {
            let line = event_line(&mut rng, "chan", 9, &a, &b, Some(&recent));
            let kind = match parse(&line) {
                ServerMessage::UserNotice(m) => format!("usernotice:{}", m.event_id),
                ServerMessage::ClearChat(_) => "clearchat".to_string(),
                ServerMessage::ClearMsg(m) => {
                    assert_eq!(m.message_id, "m-9");
                    "clearmsg".to_string()
                }
                other => panic!("unexpected {other:?}"),
            };
            kinds.insert(kind);
        }
        assert_eq!(kinds.len(), 7, "{kinds:?}");
    }

    #[test]
    fn message_ids_look_like_uuids_and_differ() {
        let mut rng = SmallRng::seed_from_u64(2);
        let (a, b) = (new_message_id(&mut rng), new_message_id(&mut rng));
        assert_ne!(a, b);
        let lens: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(lens, vec![8, 4, 4, 4, 12]);
    }
}
