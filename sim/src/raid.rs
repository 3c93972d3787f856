//! A hate raid: fresh accounts arriving in one channel within seconds and spamming it.
//!
//! [`RaidPlan`] says how many accounts, how fast they arrive (linearly over `arrive_within`),
//! how often each posts (`per_account_per_s`; Twitch lets an account without badges post 20
//! messages per 30 s, so about 0.67 a second is the most a real raid account sends), for how
//! long, and what they post (a content mix of spam kinds). The generator sends the raid beside
//! the channel's normal chat ([`SimHandle::start_raid`](crate::SimHandle::start_raid)); each
//! raid account is [`Chatter::raider`](crate::content::Chatter::raider): not a follower, not a
//! subscriber, a new account, so bans, timeouts and chat modes stop it as on Twitch.

use std::sync::Arc;
use std::time::Duration;

use crate::mix::ContentMix;

/// Most accounts one raid may bring (the generator keeps one flag per account).
pub const MAX_ACCOUNTS: usize = 100_000;

/// One raid.
#[derive(Debug, Clone)]
pub struct RaidPlan {
    /// The raided channel (login, without `#`).
    pub channel: String,
    pub accounts: usize,
    pub arrive_within: Duration,
    pub per_account_per_s: f64,
    pub duration: Duration,
    /// What raid accounts post (spam kinds: banned phrases, links, caps).
    pub mix: Arc<ContentMix>,
    /// A raid USERNOTICE announces it first (as Twitch's raid feature does).
    pub announce: bool,
}

impl RaidPlan {
    /// Accounts arrived `elapsed` into the raid.
    pub fn active(&self, elapsed: Duration) -> usize {
        if elapsed >= self.duration {
            return 0;
        }
        let arrive = self.arrive_within.as_secs_f64();
        let share = if arrive <= 0.0 {
            1.0
        } else {
            (elapsed.as_secs_f64() / arrive).min(1.0)
        };
        ((self.accounts as f64 * share).ceil() as usize).clamp(1, self.accounts.max(1))
    }

    /// Raid messages due by `elapsed` (the rate integrated over the arrival ramp).
    pub fn due(&self, elapsed: Duration) -> u64 {
        let t = elapsed.min(self.duration).as_secs_f64();
        let a = self
            .arrive_within
            .as_secs_f64()
            .min(self.duration.as_secs_f64());
        let full = self.accounts as f64 * self.per_account_per_s;
        let sent = if a <= 0.0 {
            full * t
        } else if t <= a {
            full * t * t / (2.0 * a)
        } else {
            full * (a / 2.0 + (t - a))
        };
        sent.max(0.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RaidPlan {
        RaidPlan {
            channel: "c".into(),
            accounts: 800,
            arrive_within: Duration::from_secs(10),
            per_account_per_s: 0.5,
            duration: Duration::from_secs(60),
            mix: Arc::new(ContentMix {
                plain: 0.0,
                emotes: 0.0,
                commands: 0.0,
                links: 1.0,
                caps: 0.0,
                banned: 1.0,
                command_texts: Vec::new(),
                banned_phrases: vec!["hateword1".into()],
                link_texts: Vec::new(),
            }),
            announce: true,
        }
    }

    #[test]
    fn accounts_arrive_over_the_ramp_and_post_at_their_rate() {
        let p = plan();
        assert_eq!(p.active(Duration::ZERO), 1);
        assert_eq!(p.active(Duration::from_secs(5)), 400);
        assert_eq!(p.active(Duration::from_secs(30)), 800);
        assert_eq!(p.active(Duration::from_secs(61)), 0);
        // 400 msgs/s at full strength: half of that on average over the 10 s ramp.
        assert_eq!(p.due(Duration::from_secs(10)), 2_000);
        assert_eq!(p.due(Duration::from_secs(20)), 6_000);
        assert_eq!(p.due(Duration::from_secs(60)), 22_000);
        assert_eq!(
            p.due(Duration::from_secs(600)),
            22_000,
            "nothing after the end"
        );
    }
}
