//! Per-account rate limits: a token bucket per account in front of `/v1`, so that one account's flood cannot
//! starve the others, announced with the `RateLimit-Policy` and `RateLimit` fields of the IETF httpapi draft.
//!
//! The fields follow draft-ietf-httpapi-ratelimit-headers-10: both are Structured Field lists (RFC 9651) of one
//! item, the policy name `"account"`, with parameters `q` (the quota: the bucket's size) and `w` (the window in
//! seconds: how long an empty bucket takes to fill) on `RateLimit-Policy`, and `r` (requests left) and `t` (seconds
//! until the bucket is full again) on `RateLimit`.

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};
use uuid::Uuid;

use crate::{config::RateLimitConfig, http::auth::Account, http::error::ApiError};

/// The field that names the server's quota policies.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The field that tells how much of the quota is left.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// The name of the one policy, which both fields refer to.
const POLICY: &str = "account";

type Limiter =
    RateLimiter<Uuid, DefaultKeyedStateStore<Uuid>, DefaultClock, StateInformationMiddleware>;

/// Every this many checks, the buckets that are full again are dropped: a full bucket is the same as none.
const PRUNE_EVERY: u64 = 10_000;

/// One token bucket per account, kept in this server's memory: an account that spreads its requests over `n`
/// servers may send up to `n` times the rate. Memory holds one small entry per account whose bucket is not full;
/// the others are dropped every `PRUNE_EVERY` requests.
pub struct RateLimits {
    limiter: Limiter,
    /// Checks so far, to prune every [`PRUNE_EVERY`].
    checks: AtomicU64,
    /// Tokens added per second.
    rate: NonZeroU32,
    /// The bucket's size.
    burst: NonZeroU32,
}

/// What an account's bucket held when a request was let through or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotum {
    /// Requests the account may still send at once.
    pub remaining: u32,
    /// For a refused request: how long until the next one is let through.
    pub retry_after: Option<Duration>,
}

impl RateLimits {
    /// The limits `config` sets, or `None` when rate limiting is off.
    pub fn new(config: RateLimitConfig) -> Option<Self> {
        let rate = NonZeroU32::new(config.requests_per_second)?;
        let burst = NonZeroU32::new(config.burst).unwrap_or(rate);
        let quota = Quota::per_second(rate).allow_burst(burst);
        Some(Self {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            checks: AtomicU64::new(0),
            rate,
            burst,
        })
    }

    /// Takes a token from the account's bucket, or says how long until there is one.
    pub fn check(&self, account: Uuid) -> Quotum {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        match self.limiter.check_key(&account) {
            Ok(snapshot) => Quotum {
                remaining: snapshot.remaining_burst_capacity(),
                retry_after: None,
            },
            Err(not_until) => Quotum {
                remaining: 0,
                retry_after: Some(not_until.wait_time_from(self.limiter.clock().now())),
            },
        }
    }

    /// Drops the buckets that are full again, so that memory follows the accounts active now, not all that ever were.
    fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Seconds an empty bucket takes to fill, rounded up: the policy's window.
    fn window_seconds(&self) -> u32 {
        self.burst.get().div_ceil(self.rate.get())
    }

    /// Seconds until a bucket holding `remaining` tokens is full again, rounded up.
    fn seconds_to_full(&self, remaining: u32) -> u32 {
        (self.burst.get() - remaining.min(self.burst.get())).div_ceil(self.rate.get())
    }

    /// `RateLimit-Policy` and `RateLimit` for a request that left `quotum`.
    fn fields(&self, quotum: Quotum, headers: &mut HeaderMap) {
        let policy = format!("\"{POLICY}\";q={};w={}", self.burst, self.window_seconds());
        let left = format!(
            "\"{POLICY}\";r={};t={}",
            quotum.remaining,
            self.seconds_to_full(quotum.remaining)
        );
        for (name, value) in [(RATELIMIT_POLICY, policy), (RATELIMIT, left)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

/// Lets an authenticated request through while its account has tokens, else answers 429 with `Retry-After`.
/// Every answer carries the `RateLimit-Policy` and `RateLimit` fields. It runs before the exactly-once layer, so a
/// 429 is never stored under an Idempotency-Key: the retry runs as if the refused request had not been sent.
pub async fn limit_account(
    State(limits): State<Option<Arc<RateLimits>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limits) = limits.as_deref() else {
        return next.run(request).await;
    };
    let Some(&account) = request.extensions().get::<Account>() else {
        return ApiError::internal("the rate limit runs without authentication").into_response();
    };
    let quotum = limits.check(account.id);
    let mut response = match quotum.retry_after {
        None => next.run(request).await,
        Some(wait) => {
            tracing::debug!(wait_ms = wait.as_millis(), "rate limited");
            ApiError::RateLimited {
                retry_after: u32::try_from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
                    .unwrap_or(u32::MAX)
                    .max(1),
            }
            .into_response()
        }
    };
    limits.fields(quotum, response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_unless_a_rate_is_set_and_the_burst_defaults_to_a_seconds_worth() {
        assert!(RateLimits::new(RateLimitConfig::default()).is_none());
        let limits = RateLimits::new(RateLimitConfig {
            requests_per_second: 2,
            burst: 0,
        })
        .unwrap();
        assert_eq!(limits.burst.get(), 2);
        assert_eq!(limits.window_seconds(), 1);
    }

    #[test]
    fn full_buckets_are_pruned() {
        let limits = RateLimits::new(RateLimitConfig {
            requests_per_second: 1000,
            burst: 1,
        })
        .unwrap();
        for _ in 0..PRUNE_EVERY - 1 {
            limits.check(Uuid::now_v7());
        }
        assert_eq!(
            limits.limiter.len(),
            usize::try_from(PRUNE_EVERY - 1).unwrap()
        );
        // Every bucket refills within a millisecond; the next check prunes them before it takes its token.
        std::thread::sleep(Duration::from_millis(5));
        limits.check(Uuid::now_v7());
        assert_eq!(limits.limiter.len(), 1);
    }

    #[test]
    fn a_bucket_empties_and_the_fields_say_so() {
        let limits = RateLimits::new(RateLimitConfig {
            requests_per_second: 1,
            burst: 3,
        })
        .unwrap();
        let account = Uuid::now_v7();
        let remaining: Vec<_> = (0..3).map(|_| limits.check(account).remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check(account);
        let wait = refused.retry_after.expect("the fourth request is refused");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(
            limits.check(Uuid::now_v7()).retry_after,
            None,
            "another account"
        );

        let mut headers = HeaderMap::new();
        limits.fields(refused, &mut headers);
        assert_eq!(headers[RATELIMIT_POLICY], r#""account";q=3;w=3"#);
        assert_eq!(headers[RATELIMIT], r#""account";r=0;t=3"#);
    }
}
