//! `twitch_token_*` metrics: renewals and validations by token and outcome, problems by kind,
//! whether each token is usable now, failed writes of the refresh token to the store.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenOutcome {
    pub token: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenProblemLabel {
    pub token: String,
    pub problem: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabel {
    pub token: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuthMetrics {
    pub renewals: Family<TokenOutcome, Counter>,
    pub validations: Family<TokenOutcome, Counter>,
    pub problems: Family<TokenProblemLabel, Counter>,
    pub valid: Family<TokenLabel, Gauge>,
    pub store_failures: Counter,
    /// Onboarding callbacks by outcome (`granted`, `refused`, `bad_state`, ...).
    pub authorizations: Family<TokenOutcome, Counter>,
}

impl AuthMetrics {
    pub fn register(registry: &mut Registry) -> AuthMetrics {
        let m = AuthMetrics::default();
        registry.register(
            "twitch_token_renewals",
            "Twitch token renewals by token (app, user) and outcome (ok, refused, failed)",
            m.renewals.clone(),
        );
        registry.register(
            "twitch_token_validations",
            "GET /oauth2/validate calls by token and outcome (ok, invalid, failed)",
            m.validations.clone(),
        );
        registry.register(
            "twitch_token_problems",
            "Times a Twitch token turned unusable, by token and problem (revoked, missing_scopes, expired)",
            m.problems.clone(),
        );
        registry.register(
            "twitch_token_valid",
            "1 while the token is present and has no problem",
            m.valid.clone(),
        );
        registry.register(
            "twitch_token_store_failures",
            "Failed writes of the bot's newest refresh token to the state store (retried)",
            m.store_failures.clone(),
        );
        registry.register(
            "twitch_authorizations",
            "OAuth callbacks (channel and bot authorisations) by kind and outcome",
            m.authorizations.clone(),
        );
        m
    }

    fn label(token: &str, outcome: &str) -> TokenOutcome {
        TokenOutcome {
            token: token.to_string(),
            outcome: outcome.to_string(),
        }
    }

    pub fn renewal(&self, token: &str, outcome: &str) {
        self.renewals
            .get_or_create(&Self::label(token, outcome))
            .inc();
    }

    pub fn validation(&self, token: &str, outcome: &str) {
        self.validations
            .get_or_create(&Self::label(token, outcome))
            .inc();
    }

    pub fn problem(&self, token: &str, problem: &str) {
        self.problems
            .get_or_create(&TokenProblemLabel {
                token: token.to_string(),
                problem: problem.to_string(),
            })
            .inc();
    }

    pub fn set_valid(&self, token: &str, valid: bool) {
        self.valid
            .get_or_create(&TokenLabel {
                token: token.to_string(),
            })
            .set(i64::from(valid));
    }

    pub fn authorization(&self, kind: &str, outcome: &str) {
        self.authorizations
            .get_or_create(&Self::label(kind, outcome))
            .inc();
    }
}
