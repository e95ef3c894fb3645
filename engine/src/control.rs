//! The control log: tenant-wide records that no shard owns (issue "Past one engine
//! thread"). Events, holds and bookings live on one shard each; what spans a tenant's
//! events (where they are placed, and later its API keys, webhook endpoints, venues and
//! titles) lives in one single-partition control log that every ingress follows, so it is
//! never split across shards. Its records are versioned like the requests log's:
//! a version byte, then bincode.
//!
//! Today it holds tenant placements, webhook endpoints (`crate::webhook`), refunds due
//! and made (`payments`), organiser accounts (tenants, their API keys (hashes only) and
//! their user-token keys), user erasures (issue 23) and the tenants' catalogs (venues,
//! titles, listings: `crate::catalog`). Nothing in it decides an engine's outcome yet, so
//! engines do not follow it; a record that does (a later issue) must reach each shard's
//! engine at one offset of that shard's requests log (a barrier record), or two replicas
//! of one shard could apply it at different points of their history.

use crate::ids::HoldId;
use crate::webhook::WebhookEventType;
use serde::{Deserialize, Serialize};

/// The control log's record format version.
pub const CONTROL_VERSION: u8 = 1;

/// Longest control record accepted (a tenant id is at most a few hundred bytes).
pub const CONTROL_RECORD_BYTES_MAX: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlRecord {
    /// The events and desks `tenant` creates from now on are placed on `shard` (`None`:
    /// back to the stable placement by request). Placed events stay where they are.
    PlaceTenant {
        tenant: String,
        shard: Option<u32>,
    },
    /// A tenant's admin made a webhook endpoint (`crate::webhook`). The signing key is
    /// here because every effects worker signs with it; the control log is as private as
    /// the requests log.
    WebhookCreated {
        tenant: String,
        webhook: String,
        url: String,
        event_types: Vec<WebhookEventType>,
        secret: Vec<u8>,
    },
    WebhookDeleted {
        tenant: String,
        webhook: String,
    },
    /// The effects worker gave up on the endpoint after sustained failure; its events
    /// wait (up to the worker's backlog cap) until its admin enables it again.
    WebhookDisabled {
        tenant: String,
        webhook: String,
        reason: String,
    },
    WebhookEnabled {
        tenant: String,
        webhook: String,
    },
    /// A succeeded payment that must be given back (`payments`): its hold expired, was
    /// released, confirmed by another payment or its event canceled before the gateway's
    /// word came, or the amount or currency does not match the hold. Appended by the
    /// ingress that received the gateway's webhook (again on every retry of it: the
    /// effects worker refunds a payment once, by its id); the effects worker refunds it.
    PaymentRefundDue {
        hold: HoldId,
        payment_id: String,
        amount_cents: u64,
        /// ISO 4217.
        currency: String,
        /// A `details.reason` word: `hold_expired`, `amount_mismatch`, …
        reason: String,
    },
    /// The effects worker refunded the payment: the gateway's refund id, recorded so that
    /// a restart never asks again and every ingress shows the hold `refunded`.
    PaymentRefunded {
        hold: HoldId,
        payment_id: String,
        refund_id: String,
        amount_cents: u64,
        currency: String,
    },
    /// The operator made a tenant (organiser account; issue "Discovery like a real box
    /// office, and organiser accounts by API"). Config-file tenants exist without one.
    TenantCreated {
        tenant: String,
        name: String,
    },
    /// The operator suspended the tenant: its API keys are refused until it is resumed.
    TenantSuspended {
        tenant: String,
        reason: String,
    },
    TenantResumed {
        tenant: String,
    },
    /// An API key was issued, or rotated (the same `key` with a new secret: the old
    /// secret stops working). Only the secret's SHA-256 is recorded: the secret is shown
    /// once, to whoever asked for it.
    ApiKeyIssued {
        tenant: String,
        key: String,
        name: String,
        role: ApiKeyRole,
        secret_sha256: [u8; 32],
    },
    ApiKeyRevoked {
        tenant: String,
        key: String,
    },
    /// The tenant's own key for verifying its users' tokens (tokens whose `iss` is the
    /// tenant): an HS256 secret or an RS256 / EdDSA public key (PEM). The control log is
    /// as private as the requests log, as for webhook signing keys.
    UserTokenKeySet {
        tenant: String,
        algorithm: UserTokenAlgorithm,
        key: String,
    },
    UserTokenKeyRemoved {
        tenant: String,
    },
    /// An operator erased a user (issue 23, crypto-shredding): every ingress destroys the
    /// key that seals the user's id in its personal-data store, and the pseudonym never
    /// resolves again. The record names only the pseudonym: the identity is not logged.
    UserErased {
        pseudonym: String,
    },
    /// A tenant's admin made or changed a venue (`crate::catalog`): the whole venue as it
    /// now is. Every reader gives a hall whose chart differs from its last one the next
    /// chart version (from 1), so versions follow log order everywhere.
    VenueSaved {
        tenant: String,
        venue: String,
        record: crate::catalog::VenueRecord,
    },
    /// A tenant's admin made or changed a title.
    TitleSaved {
        tenant: String,
        title: String,
        record: crate::catalog::TitleRecord,
    },
    /// The event (made by the engine first) is listed under a title, venue and hall; a
    /// later record for the same event replaces it.
    EventListed {
        tenant: String,
        listing: crate::catalog::Listing,
    },
}

/// What an API key may do: `Admin` everything of its tenant, `Checkin` only check tickets
/// in (a scanner), `Reports` read only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ApiKeyRole {
    Admin,
    Checkin,
    Reports,
}

impl ApiKeyRole {
    pub const ALL: [ApiKeyRole; 3] = [ApiKeyRole::Admin, ApiKeyRole::Checkin, ApiKeyRole::Reports];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyRole::Admin => "admin",
            ApiKeyRole::Checkin => "checkin",
            ApiKeyRole::Reports => "reports",
        }
    }

    pub fn parse(word: &str) -> Option<ApiKeyRole> {
        ApiKeyRole::ALL
            .into_iter()
            .find(|role| role.as_str() == word)
    }
}

/// How a tenant's user tokens are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserTokenAlgorithm {
    Hs256,
    Rs256,
    EdDsa,
}

impl UserTokenAlgorithm {
    pub const ALL: [UserTokenAlgorithm; 3] = [
        UserTokenAlgorithm::Hs256,
        UserTokenAlgorithm::Rs256,
        UserTokenAlgorithm::EdDsa,
    ];

    /// The JOSE name (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            UserTokenAlgorithm::Hs256 => "HS256",
            UserTokenAlgorithm::Rs256 => "RS256",
            UserTokenAlgorithm::EdDsa => "EdDSA",
        }
    }

    pub fn parse(word: &str) -> Option<UserTokenAlgorithm> {
        UserTokenAlgorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str() == word)
    }
}

pub fn encode_control(record: &ControlRecord) -> Vec<u8> {
    crate::wire::encode_versioned::<_, CONTROL_RECORD_BYTES_MAX>(CONTROL_VERSION, record)
}

/// Decodes a control record; the error is a sentence (a reader logs it and skips the
/// record, the same on every reader).
pub fn decode_control(bytes: &[u8]) -> Result<ControlRecord, String> {
    crate::wire::decode_versioned::<_, CONTROL_RECORD_BYTES_MAX>(
        bytes,
        CONTROL_VERSION,
        "control record",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_records_round_trip_and_bad_bytes_are_refused() {
        for record in [
            ControlRecord::PlaceTenant {
                tenant: "acme".into(),
                shard: Some(2),
            },
            ControlRecord::PlaceTenant {
                tenant: "acme".into(),
                shard: None,
            },
            ControlRecord::WebhookCreated {
                tenant: "acme".into(),
                webhook: "wh_1".into(),
                url: "https://example.com/hook".into(),
                event_types: vec![WebhookEventType::HoldExpired],
                secret: vec![1; 32],
            },
            ControlRecord::WebhookDeleted {
                tenant: "acme".into(),
                webhook: "wh_1".into(),
            },
            ControlRecord::WebhookDisabled {
                tenant: "acme".into(),
                webhook: "wh_1".into(),
                reason: "HTTP 500 for 24 h".into(),
            },
            ControlRecord::WebhookEnabled {
                tenant: "acme".into(),
                webhook: "wh_1".into(),
            },
            ControlRecord::PaymentRefundDue {
                hold: HoldId(7),
                payment_id: "pi_1".into(),
                amount_cents: 5000,
                currency: "EUR".into(),
                reason: "hold_expired".into(),
            },
            ControlRecord::PaymentRefunded {
                hold: HoldId(7),
                payment_id: "pi_1".into(),
                refund_id: "re_1".into(),
                amount_cents: 5000,
                currency: "EUR".into(),
            },
            ControlRecord::TenantCreated {
                tenant: "acme".into(),
                name: "Acme Concerts".into(),
            },
            ControlRecord::TenantSuspended {
                tenant: "acme".into(),
                reason: "unpaid".into(),
            },
            ControlRecord::TenantResumed {
                tenant: "acme".into(),
            },
            ControlRecord::ApiKeyIssued {
                tenant: "acme".into(),
                key: "key_1".into(),
                name: "door scanner".into(),
                role: ApiKeyRole::Checkin,
                secret_sha256: [7; 32],
            },
            ControlRecord::ApiKeyRevoked {
                tenant: "acme".into(),
                key: "key_1".into(),
            },
            ControlRecord::UserTokenKeySet {
                tenant: "acme".into(),
                algorithm: UserTokenAlgorithm::EdDsa,
                key: "-----BEGIN PUBLIC KEY-----".into(),
            },
            ControlRecord::UserTokenKeyRemoved {
                tenant: "acme".into(),
            },
            ControlRecord::UserErased {
                pseudonym: "u_aaaaaaaaaaaaaaaaaaaaaaaa".into(),
            },
            ControlRecord::VenueSaved {
                tenant: "acme".into(),
                venue: "vn_1".into(),
                record: crate::catalog::VenueRecord {
                    name: "Olympia".into(),
                    address: "28 Bd des Capucines".into(),
                    city: "Paris".into(),
                    country: "FR".into(),
                    postal_code: "75009".into(),
                    lat_microdeg: 48_870_300,
                    lng_microdeg: 2_328_600,
                    halls: vec![crate::catalog::HallRecord {
                        name: "Main".into(),
                        chart: crate::catalog::Chart {
                            sections: vec![crate::catalog::ChartSection {
                                name: "A".into(),
                                rows: vec![crate::catalog::ChartRow {
                                    label: "1".into(),
                                    seats: 10,
                                    category: "Gold".into(),
                                }],
                            }],
                        },
                    }],
                },
            },
            ControlRecord::TitleSaved {
                tenant: "acme".into(),
                title: "tt_1".into(),
                record: crate::catalog::TitleRecord {
                    name: "Avengers Endgame".into(),
                    kind: "film".into(),
                    description: String::new(),
                },
            },
            ControlRecord::EventListed {
                tenant: "acme".into(),
                listing: crate::catalog::Listing {
                    event: crate::EventId(3),
                    title: Some("tt_1".into()),
                    venue: "vn_1".into(),
                    hall: "Main".into(),
                    chart_version: 2,
                },
            },
        ] {
            assert_eq!(decode_control(&encode_control(&record)), Ok(record));
        }
        let good = encode_control(&ControlRecord::PlaceTenant {
            tenant: "acme".into(),
            shard: Some(1),
        });
        let mut trailing = good.clone();
        trailing.push(0);
        let mut version = good.clone();
        version[0] = 9;
        for (bytes, error) in [
            (Vec::new(), "empty control record"),
            (version, "unknown control record version 9"),
            (trailing, "1 trailing bytes after the control record"),
            (vec![CONTROL_VERSION, 7], "undecodable control record"),
        ] {
            let refused = decode_control(&bytes).unwrap_err();
            assert!(refused.starts_with(error), "{refused}");
        }
    }
}
