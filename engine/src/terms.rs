//! An event's terms of sale: the currency its prices are in and the cancellation policy
//! its users book under. Given at creation (`Command::CreateEventWithTerms`) and never
//! changed; an event created without terms has [`EventTerms::without_terms`]: the
//! deployment's default currency (`payments.currency`, the read side knows it) and
//! cancellation at any time with a full refund, as before terms existed.
//!
//! The rules here are the one copy: the ingress validates a request's terms with
//! [`EventTerms::check`] (a 400 naming the field) and the engine with the same function
//! (`Invalid`), and the cut-off is [`CancellationPolicy::user_may_cancel`].

use serde::{Deserialize, Serialize};

/// The longest cut-off before an event's start: a year.
pub const CANCELLATION_HOURS_MAX: u32 = 8_760;

const HOUR_MS: u64 = 3_600_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTerms {
    /// ISO 4217, upper case (`EUR`): every price of the event, its payments and refunds.
    pub currency: String,
    pub cancellation: CancellationPolicy,
}

/// When a user may cancel a booking, and what they get back. An organiser's event
/// cancellation is not a user's: it always refunds every booking in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationPolicy {
    /// A user may cancel until this many hours before the event's start (its
    /// `starts_at` as last updated); `None`: no cut-off, at any time (events without
    /// terms).
    pub until_hours_before_start: Option<u32>,
    pub refund: CancellationRefund,
}

/// What a user's cancellation gives back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancellationRefund {
    /// The booking's payment in full.
    Full,
    /// Nothing: the seats go back on sale, the money stays.
    None,
}

impl CancellationRefund {
    pub fn as_str(self) -> &'static str {
        match self {
            CancellationRefund::Full => "full",
            CancellationRefund::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<CancellationRefund> {
        match text {
            "full" => Some(CancellationRefund::Full),
            "none" => Some(CancellationRefund::None),
            _ => None,
        }
    }
}

impl CancellationPolicy {
    /// The policy of an event without terms: cancel at any time, refunded in full.
    pub const ANY_TIME_FULL_REFUND: CancellationPolicy = CancellationPolicy {
        until_hours_before_start: None,
        refund: CancellationRefund::Full,
    };

    /// Whether a user may cancel a booking at `now_ms` of an event starting at
    /// `starts_at_ms`: until the cut-off, which is itself refused.
    pub fn user_may_cancel(&self, now_ms: u64, starts_at_ms: u64) -> bool {
        match self.until_hours_before_start {
            None => true,
            Some(hours) => {
                let cutoff_ms = starts_at_ms.saturating_sub(u64::from(hours) * HOUR_MS);
                now_ms < cutoff_ms
            }
        }
    }
}

/// Whether `code` is an ISO 4217 currency code, as written (upper case).
pub fn currency_valid(code: &str) -> bool {
    code.len() == 3
        && code.bytes().all(|byte| byte.is_ascii_uppercase())
        && iso_currency::Currency::from_code(code).is_some()
}

/// What is wrong with a set of terms: the field (as the HTTP API names it) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TermsError {
    pub field: &'static str,
    pub reason: String,
}

impl EventTerms {
    /// The terms of an event created without any, in a deployment whose default currency
    /// is `currency`.
    pub fn without_terms(currency: &str) -> EventTerms {
        EventTerms {
            currency: currency.to_string(),
            cancellation: CancellationPolicy::ANY_TIME_FULL_REFUND,
        }
    }

    /// The one validation of terms (ingress and engine).
    pub fn check(&self) -> Result<(), TermsError> {
        if !currency_valid(&self.currency) {
            return Err(TermsError {
                field: "currency",
                reason: format!(
                    "{:?} is not an ISO 4217 currency code (upper case, like EUR)",
                    self.currency
                ),
            });
        }
        if let Some(hours) = self.cancellation.until_hours_before_start {
            if hours > CANCELLATION_HOURS_MAX {
                return Err(TermsError {
                    field: "cancellation.until_hours_before_start",
                    reason: format!("must be from 0 to {CANCELLATION_HOURS_MAX} hours"),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_iso_4217_codes_in_upper_case() {
        for (code, valid) in [
            ("EUR", true),
            ("USD", true),
            ("JPY", true),
            ("eur", false),
            ("EURO", false),
            ("EU", false),
            ("", false),
            ("ABC", false),
            ("€UR", false),
        ] {
            assert_eq!(currency_valid(code), valid, "{code}");
        }
    }

    #[test]
    fn a_cancellation_is_allowed_until_its_cutoff_and_not_at_it() {
        let start_ms = 100 * HOUR_MS;
        let policy = |hours| CancellationPolicy {
            until_hours_before_start: hours,
            refund: CancellationRefund::Full,
        };
        assert!(policy(Some(48)).user_may_cancel(52 * HOUR_MS - 1, start_ms));
        assert!(!policy(Some(48)).user_may_cancel(52 * HOUR_MS, start_ms));
        assert!(policy(Some(0)).user_may_cancel(start_ms - 1, start_ms));
        assert!(!policy(Some(0)).user_may_cancel(start_ms, start_ms));
        // A cut-off before time 0 is already past.
        assert!(!policy(Some(200)).user_may_cancel(0, start_ms));
        assert!(policy(None).user_may_cancel(start_ms * 2, start_ms));
    }

    #[test]
    fn bad_terms_name_their_field() {
        let mut terms = EventTerms::without_terms("EUR");
        assert_eq!(terms.check(), Ok(()));
        terms.cancellation.until_hours_before_start = Some(CANCELLATION_HOURS_MAX);
        assert_eq!(terms.check(), Ok(()));
        terms.cancellation.until_hours_before_start = Some(CANCELLATION_HOURS_MAX + 1);
        assert_eq!(
            terms.check().unwrap_err().field,
            "cancellation.until_hours_before_start"
        );
        terms.currency = "XYZ".into();
        assert_eq!(terms.check().unwrap_err().field, "currency");
    }
}
