//! Webhook endpoints as the control log defines them (issue "Effects outside, exactly
//! once"): the event types an endpoint may subscribe to, the registry every reader of the
//! control log builds from its records ([`Webhooks::apply`]: the ingress answers the admin
//! API from it, the effects worker delivers by it), and which addresses a delivery may
//! reach ([`address_public`], the SSRF guard).
//!
//! One implementation of the rules, so every ingress and worker that applies the same
//! control records holds the same endpoints: a record the appender checked but that the
//! registry refuses (two creations racing past the per-tenant cap) is skipped identically
//! everywhere, and the creator learns it because its endpoint never appears.

use crate::control::ControlRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Endpoints one tenant may have (deleted ones do not count).
pub const WEBHOOKS_PER_TENANT_MAX: usize = 16;
/// Endpoints one control log may hold, every tenant together.
pub const WEBHOOKS_MAX: usize = 100_000;
/// Longest endpoint URL, in bytes.
pub const WEBHOOK_URL_BYTES_MAX: usize = 2048;
/// Signing key length: Standard Webhooks asks for 24 to 64 bytes.
pub const WEBHOOK_SECRET_BYTES: usize = 32;
/// Longest reason recorded for a disabled endpoint, in bytes.
pub const WEBHOOK_DISABLED_REASON_BYTES_MAX: usize = 512;

/// What happened, as a webhook's `type`. New variants go at the end (control records
/// store the variant's index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WebhookEventType {
    BookingCreated,
    BookingCanceled,
    HoldExpired,
    WaitlistOffered,
    WaitlistEnded,
    EventCanceled,
    CheckinUsed,
    DeskTicketAllocated,
}

impl WebhookEventType {
    pub const ALL: [WebhookEventType; 8] = [
        WebhookEventType::BookingCreated,
        WebhookEventType::BookingCanceled,
        WebhookEventType::HoldExpired,
        WebhookEventType::WaitlistOffered,
        WebhookEventType::WaitlistEnded,
        WebhookEventType::EventCanceled,
        WebhookEventType::CheckinUsed,
        WebhookEventType::DeskTicketAllocated,
    ];

    /// The word in payloads and in `event_types`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventType::BookingCreated => "booking.created",
            WebhookEventType::BookingCanceled => "booking.canceled",
            WebhookEventType::HoldExpired => "hold.expired",
            WebhookEventType::WaitlistOffered => "waitlist.offered",
            WebhookEventType::WaitlistEnded => "waitlist.ended",
            WebhookEventType::EventCanceled => "event.canceled",
            WebhookEventType::CheckinUsed => "checkin.used",
            WebhookEventType::DeskTicketAllocated => "desk_ticket.allocated",
        }
    }

    pub fn parse(word: &str) -> Option<WebhookEventType> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == word)
    }
}

/// One endpoint, as the control log made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub tenant: String,
    pub url: String,
    /// Sorted, without repeats.
    pub event_types: Vec<WebhookEventType>,
    pub secret: Vec<u8>,
    /// False once the effects worker disabled it after sustained failure, until its admin
    /// enables it again.
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// The control log offset of its creation.
    pub created_offset: u64,
}

impl Webhook {
    pub fn subscribes(&self, kind: WebhookEventType) -> bool {
        self.event_types.binary_search(&kind).is_ok()
    }
}

/// The endpoints a control log defines, by id.
#[derive(Clone, Debug, Default)]
pub struct Webhooks {
    by_id: BTreeMap<String, Webhook>,
}

/// Why a webhook control record was skipped (the same on every reader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookSkipped {
    TooManyForTenant,
    TooMany,
    DuplicateId,
    NoSuchWebhook,
    Invalid(&'static str),
}

impl Webhooks {
    /// Applies a control record at `offset`; records of other kinds change nothing.
    pub fn apply(&mut self, offset: u64, record: &ControlRecord) -> Result<(), WebhookSkipped> {
        match record {
            ControlRecord::PlaceTenant { .. }
            | ControlRecord::PaymentRefundDue { .. }
            | ControlRecord::PaymentRefunded { .. }
            | ControlRecord::TenantCreated { .. }
            | ControlRecord::TenantSuspended { .. }
            | ControlRecord::TenantResumed { .. }
            | ControlRecord::ApiKeyIssued { .. }
            | ControlRecord::ApiKeyRevoked { .. }
            | ControlRecord::UserTokenKeySet { .. }
            | ControlRecord::UserTokenKeyRemoved { .. }
            | ControlRecord::UserErased { .. }
            | ControlRecord::VenueSaved { .. }
            | ControlRecord::TitleSaved { .. }
            | ControlRecord::EventListed { .. } => Ok(()),
            ControlRecord::WebhookCreated {
                tenant,
                webhook,
                url,
                event_types,
                secret,
            } => {
                if self.by_id.contains_key(webhook) {
                    return Err(WebhookSkipped::DuplicateId);
                }
                if url.len() > WEBHOOK_URL_BYTES_MAX {
                    return Err(WebhookSkipped::Invalid("url too long"));
                }
                if event_types.is_empty() || secret.len() < 24 {
                    return Err(WebhookSkipped::Invalid("no event types or a short secret"));
                }
                if self.of_tenant(tenant).count() >= WEBHOOKS_PER_TENANT_MAX {
                    return Err(WebhookSkipped::TooManyForTenant);
                }
                if self.by_id.len() >= WEBHOOKS_MAX {
                    return Err(WebhookSkipped::TooMany);
                }
                let mut event_types = event_types.clone();
                event_types.sort_unstable();
                event_types.dedup();
                self.by_id.insert(
                    webhook.clone(),
                    Webhook {
                        id: webhook.clone(),
                        tenant: tenant.clone(),
                        url: url.clone(),
                        event_types,
                        secret: secret.clone(),
                        enabled: true,
                        disabled_reason: None,
                        created_offset: offset,
                    },
                );
                Ok(())
            }
            ControlRecord::WebhookDeleted { tenant, webhook } => {
                self.owned(tenant, webhook)?;
                self.by_id.remove(webhook);
                Ok(())
            }
            ControlRecord::WebhookDisabled {
                tenant,
                webhook,
                reason,
            } => {
                let found = self.owned(tenant, webhook)?;
                found.enabled = false;
                let mut reason = reason.clone();
                truncate_to_char(&mut reason, WEBHOOK_DISABLED_REASON_BYTES_MAX);
                found.disabled_reason = Some(reason);
                Ok(())
            }
            ControlRecord::WebhookEnabled { tenant, webhook } => {
                let found = self.owned(tenant, webhook)?;
                found.enabled = true;
                found.disabled_reason = None;
                Ok(())
            }
        }
    }

    fn owned(&mut self, tenant: &str, webhook: &str) -> Result<&mut Webhook, WebhookSkipped> {
        match self.by_id.get_mut(webhook) {
            Some(found) if found.tenant == tenant => Ok(found),
            _ => Err(WebhookSkipped::NoSuchWebhook),
        }
    }

    pub fn get(&self, webhook: &str) -> Option<&Webhook> {
        self.by_id.get(webhook)
    }

    /// The tenant's endpoint `webhook` (another tenant's is `None`).
    pub fn of(&self, tenant: &str, webhook: &str) -> Option<&Webhook> {
        self.by_id
            .get(webhook)
            .filter(|found| found.tenant == tenant)
    }

    /// The tenant's endpoints, in order of creation.
    pub fn of_tenant<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a Webhook> + 'a {
        let mut found: Vec<&Webhook> = self
            .by_id
            .values()
            .filter(|webhook| webhook.tenant == tenant)
            .collect();
        found.sort_by_key(|webhook| webhook.created_offset);
        found.into_iter()
    }

    /// Every endpoint, by id.
    pub fn all(&self) -> impl Iterator<Item = &Webhook> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

fn truncate_to_char(text: &mut String, bytes_max: usize) {
    if text.len() > bytes_max {
        let mut end = bytes_max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Whether a delivery may reach `address` while the SSRF guard is on: only public unicast
/// addresses; never loopback, private (RFC 1918, unique local), link-local (cloud metadata
/// lives at 169.254.169.254), shared (CGNAT), unspecified, broadcast, multicast,
/// documentation or benchmarking ranges, nor an IPv4 address mapped into IPv6.
pub fn address_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4_public(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_public(v4),
            None => v6_public(v6),
        },
    }
}

fn v4_public(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    !(address.is_loopback()
        || address.is_private()
        || address.is_link_local()
        || address.is_unspecified()
        || address.is_broadcast()
        || address.is_multicast()
        || address.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn v6_public(address: Ipv6Addr) -> bool {
    let first = address.segments()[0];
    !(address.is_loopback()
        || address.is_unspecified()
        || address.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && address.segments()[1] == 0x0db8
        || first == 0x0064 && address.segments()[1] == 0xff9b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(tenant: &str, webhook: &str) -> ControlRecord {
        ControlRecord::WebhookCreated {
            tenant: tenant.into(),
            webhook: webhook.into(),
            url: "https://example.com/hook".into(),
            event_types: vec![
                WebhookEventType::HoldExpired,
                WebhookEventType::BookingCreated,
                WebhookEventType::HoldExpired,
            ],
            secret: vec![7; WEBHOOK_SECRET_BYTES],
        }
    }

    #[test]
    fn event_types_round_trip() {
        for kind in WebhookEventType::ALL {
            assert_eq!(WebhookEventType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(WebhookEventType::parse("booking.made"), None);
    }

    #[test]
    fn the_registry_applies_records_and_skips_what_breaks_its_rules() {
        let mut webhooks = Webhooks::default();
        assert_eq!(webhooks.apply(0, &created("acme", "wh_1")), Ok(()));
        let made = webhooks.of("acme", "wh_1").unwrap();
        assert_eq!(
            made.event_types,
            [
                WebhookEventType::BookingCreated,
                WebhookEventType::HoldExpired
            ]
        );
        assert!(made.subscribes(WebhookEventType::HoldExpired));
        assert!(!made.subscribes(WebhookEventType::EventCanceled));
        assert_eq!(webhooks.of("other", "wh_1"), None);
        assert_eq!(
            webhooks.apply(1, &created("acme", "wh_1")),
            Err(WebhookSkipped::DuplicateId)
        );
        let disable = ControlRecord::WebhookDisabled {
            tenant: "acme".into(),
            webhook: "wh_1".into(),
            reason: "x".repeat(WEBHOOK_DISABLED_REASON_BYTES_MAX + 9),
        };
        assert_eq!(webhooks.apply(2, &disable), Ok(()));
        let disabled = webhooks.get("wh_1").unwrap();
        assert!(!disabled.enabled);
        assert_eq!(
            disabled.disabled_reason.as_ref().unwrap().len(),
            WEBHOOK_DISABLED_REASON_BYTES_MAX
        );
        // Another tenant cannot enable or delete it.
        for record in [
            ControlRecord::WebhookEnabled {
                tenant: "other".into(),
                webhook: "wh_1".into(),
            },
            ControlRecord::WebhookDeleted {
                tenant: "other".into(),
                webhook: "wh_1".into(),
            },
        ] {
            assert_eq!(
                webhooks.apply(3, &record),
                Err(WebhookSkipped::NoSuchWebhook)
            );
        }
        let enable = ControlRecord::WebhookEnabled {
            tenant: "acme".into(),
            webhook: "wh_1".into(),
        };
        assert_eq!(webhooks.apply(4, &enable), Ok(()));
        assert!(webhooks.get("wh_1").unwrap().enabled);
        // The per-tenant cap: the record past it is skipped.
        for index in 2..=WEBHOOKS_PER_TENANT_MAX {
            assert_eq!(
                webhooks.apply(5, &created("acme", &format!("wh_{index}"))),
                Ok(())
            );
        }
        assert_eq!(
            webhooks.apply(6, &created("acme", "wh_over")),
            Err(WebhookSkipped::TooManyForTenant)
        );
        assert_eq!(webhooks.of_tenant("acme").count(), WEBHOOKS_PER_TENANT_MAX);
        let delete = ControlRecord::WebhookDeleted {
            tenant: "acme".into(),
            webhook: "wh_1".into(),
        };
        assert_eq!(webhooks.apply(7, &delete), Ok(()));
        assert_eq!(webhooks.apply(8, &created("acme", "wh_over")), Ok(()));
        assert_eq!(
            webhooks.apply(9, &delete),
            Err(WebhookSkipped::NoSuchWebhook)
        );
    }

    #[test]
    fn only_public_addresses_pass_the_guard() {
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(address_public(public.parse().unwrap()), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!address_public(private.parse().unwrap()), "{private}");
        }
    }
}
