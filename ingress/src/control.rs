//! The control log as this ingress sees it (`engine::control`): a follower thread applies
//! its records to [`Control`]'s state (where each tenant's new events go, and the tenants'
//! webhook endpoints: `engine::webhook::Webhooks`), and the operator's placement endpoint
//! and the admins' webhook endpoints append to it and answer once this ingress's own
//! follower has applied the record, so the answer says what this ingress now does.
//!
//! Placement of a new event or desk: the tenant's pinned shard if it has one, otherwise a
//! stable function of the request (the tenant and its idempotency key, or the request's
//! encoding when it has none), so a retry of one creation always reaches the shard whose
//! engine (and idempotency index) saw the first try. Once created, an event never moves:
//! its id says its shard.

use crate::accounts::{Accounts, Freshness};
use crate::personal_data::PersonalData;
use engine::control::{decode_control, encode_control, ControlRecord};
use engine::webhook::{
    Webhook, WebhookEventType, Webhooks, WEBHOOKS_PER_TENANT_MAX, WEBHOOK_SECRET_BYTES,
};
use requestlog::{LogReader, LogWriter};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// How long one poll of the control log waits (bounds how long a stop takes).
const POLL_WAIT: Duration = Duration::from_millis(200);
/// How often the control follower asks the log's end (a broker round trip on Kafka).
const END_ASK_INTERVAL: Duration = Duration::from_millis(100);
/// Records read per poll.
const POLL_RECORDS_MAX: usize = 256;
/// Most tenants one control log may pin (a limit on everything).
pub(crate) const PINS_MAX: usize = 100_000;

/// Tenant-wide state and where to append to it.
pub(crate) struct Control {
    shards: u32,
    writer: Option<Arc<dyn LogWriter>>,
    pins: RwLock<BTreeMap<String, u32>>,
    webhooks: RwLock<Webhooks>,
    /// Holds whose payment is due back or was refunded (`payments`), from
    /// `PaymentRefundDue` / `PaymentRefunded` records: at most one entry per refunded
    /// payment, and a payment is refunded once.
    refunds: RwLock<BTreeMap<engine::HoldId, HoldRefund>>,
    /// Tenants, API keys and user-token keys (`crate::accounts`).
    accounts: RwLock<Accounts>,
    /// How far behind the control log this ingress is (tenant keys are refused past a
    /// bound); `None` without a control log.
    freshness: Option<Mutex<Freshness>>,
    /// Notified when the follower catches up with an end it observed.
    caught_up: std::sync::Condvar,
    /// Pseudonyms erased (`UserErased`): never resolved again, and a user who returns
    /// gets the next generation (`crate::privacy`).
    erased: RwLock<HashSet<String>>,
    /// This ingress's personal-data store: an erasure destroys the user's key in it.
    personal: Arc<PersonalData>,
    /// The tenants' venues, titles and listings (`crate::catalog`).
    catalog: RwLock<crate::catalog::Catalog>,
    /// Events relisted and titles changed, for the search index (`crate::search`).
    pub(crate) search_changes: crate::search::SearchChanges,
    /// The control log's offset after the last record applied.
    applied: watch::Sender<u64>,
}

/// Erasures one control log may hold (a limit on everything: the erased pseudonyms are
/// kept in every ingress's memory, 24 bytes each).
pub(crate) const ERASED_USERS_MAX: usize = 10_000_000;

/// Why an erasure could not be recorded.
#[derive(Debug)]
pub(crate) enum EraseError {
    NoControlLog,
    AlreadyErased,
    TooMany,
    Log(String),
}

/// Why a venue, title or listing could not be recorded.
#[derive(Debug)]
pub(crate) enum CatalogError {
    NoControlLog,
    /// The tenant has its cap of venues or titles (`crate::catalog`), also when a creation
    /// racing this one took the last place.
    TooMany(crate::catalog::Skipped),
    Log(String),
}

/// Refunds remembered for `GET /v1/holds/{id}` (a limit on everything): past it the
/// oldest holds' (the smallest ids) are forgotten first; their refunds stay in the control
/// log and the gateway, only the hold's answer no longer says `refunded`.
pub(crate) const HOLD_REFUNDS_KEPT_MAX: usize = 1_000_000;

fn forget_oldest_refunds(refunds: &mut BTreeMap<engine::HoldId, HoldRefund>, kept_max: usize) {
    while refunds.len() > kept_max {
        refunds.pop_first();
    }
}

/// A hold's payment given back, as the control log says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HoldRefund {
    pub(crate) payment_id: String,
    pub(crate) reason: String,
    /// The gateway's refund id, once the effects worker refunded it.
    pub(crate) refund_id: Option<String>,
}

/// What an admin changes about an endpoint.
#[derive(Clone, Copy, Debug)]
pub(crate) enum WebhookChange {
    Delete,
    Enable,
}

/// Why a webhook endpoint could not be made or changed.
#[derive(Debug)]
pub(crate) enum WebhookError {
    NoControlLog,
    NotFound,
    TooMany,
    Log(String),
}

/// Why a placement could not be recorded.
#[derive(Debug)]
pub(crate) enum PlaceError {
    /// This ingress has no control log (a single shard, or an in-process test ingress).
    NoControlLog,
    ShardOutOfRange {
        shard: u32,
        shards: u32,
    },
    TooManyPins,
    Log(String),
}

impl Control {
    /// Control state of a deployment of `shards` shards; `writer` appends to its control
    /// log (`None`: none, placements are by request only). `personal` is this ingress's
    /// personal-data store; `bootstrap_tenants` are the config file's; past `lag_max`
    /// behind the control log tenant keys are refused.
    pub(crate) fn new(
        shards: u32,
        writer: Option<Arc<dyn LogWriter>>,
        personal: Arc<PersonalData>,
        bootstrap_tenants: Vec<String>,
        lag_max: Duration,
    ) -> Control {
        let freshness = writer.as_ref().map(|_| Mutex::new(Freshness::new(lag_max)));
        Control {
            shards,
            writer,
            erased: RwLock::new(HashSet::new()),
            personal,
            pins: RwLock::new(BTreeMap::new()),
            webhooks: RwLock::new(Webhooks::default()),
            refunds: RwLock::new(BTreeMap::new()),
            accounts: RwLock::new(Accounts::new(bootstrap_tenants)),
            freshness,
            caught_up: std::sync::Condvar::new(),
            catalog: RwLock::new(crate::catalog::Catalog::default()),
            search_changes: crate::search::SearchChanges::default(),
            applied: watch::channel(0).0,
        }
    }

    /// The accounts as this ingress applied them.
    pub(crate) fn accounts(&self) -> std::sync::RwLockReadGuard<'_, Accounts> {
        self.accounts
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How far behind the control log this ingress is, when more than the bound for tenant
    /// keys, and the bound; `None` when fresh enough or without a control log.
    pub(crate) fn behind(&self) -> Option<(Duration, Duration)> {
        let freshness = self
            .freshness
            .as_ref()?
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        freshness
            .behind(std::time::Instant::now())
            .map(|behind| (behind, freshness.lag_max()))
    }

    /// Blocks until this ingress caught up with its control log once, or `timeout` passed
    /// (then tenant keys are refused until it does); whether it did. An ingress waits for
    /// it at start so that it does not refuse tenant keys in its first moments.
    pub(crate) fn wait_caught_up(&self, timeout: Duration) -> bool {
        let Some(freshness) = &self.freshness else {
            return true;
        };
        let deadline = std::time::Instant::now() + timeout;
        let mut guard = freshness
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            let now = std::time::Instant::now();
            if guard.behind(now).is_none() {
                return true;
            }
            if now >= deadline {
                return false;
            }
            guard = self
                .caught_up
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Appends account records (`crate::accounts`) in one append, so they are adjacent,
    /// and waits until this ingress applied the last; its offset. A record that lost a
    /// race (two creations of one tenant) was skipped: the caller looks at the accounts.
    pub(crate) async fn append_accounts(
        &self,
        records: Vec<ControlRecord>,
        timeout: Duration,
    ) -> Result<u64, WebhookError> {
        let writer = self.writer.clone().ok_or(WebhookError::NoControlLog)?;
        let records: Vec<Vec<u8>> = records.iter().map(encode_control).collect();
        let appended = tokio::task::spawn_blocking(move || writer.append(records))
            .await
            .map_err(|error| WebhookError::Log(error.to_string()))?
            .map_err(|error| WebhookError::Log(error.to_string()))?;
        let offset = appended.last().map_or(0, |appended| appended.offset);
        self.wait_applied(offset, timeout)
            .await
            .map_err(WebhookError::Log)?;
        Ok(offset)
    }

    /// Waits (up to `timeout`) until this ingress's follower applied the record at `offset`.
    async fn wait_applied(&self, offset: u64, timeout: Duration) -> Result<(), String> {
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(timeout, applied.wait_for(|applied| *applied > offset))
            .await
            .map_err(|_| "the control log's follower did not apply the record in time".to_string())?
            .map_err(|error| error.to_string())?;
        Ok(())
    }

    /// The shard a new event or desk of `tenant` goes to: its pin, else
    /// `blake3(tenant, key or request) mod shards`.
    pub(crate) fn place(&self, tenant: &str, idempotency_key: Option<&str>, request: &[u8]) -> u32 {
        if self.shards == 1 {
            return 0;
        }
        if let Some(shard) = self
            .pins
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(tenant)
        {
            return *shard;
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&(tenant.len() as u64).to_le_bytes());
        hasher.update(tenant.as_bytes());
        match idempotency_key {
            Some(key) => hasher.update(b"key").update(key.as_bytes()),
            None => hasher.update(b"request").update(request),
        };
        let digest = hasher.finalize();
        let first = u64::from_le_bytes(digest.as_bytes()[..8].try_into().expect("8 bytes"));
        engine::shard_of(first, self.shards)
    }

    pub(crate) fn pin(&self, tenant: &str) -> Option<u32> {
        self.pins
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(tenant)
            .copied()
    }

    /// Appends a placement to the control log and waits (up to `timeout`) until this
    /// ingress's follower has applied it.
    pub(crate) async fn set_pin(
        &self,
        tenant: &str,
        shard: Option<u32>,
        timeout: Duration,
    ) -> Result<(), PlaceError> {
        let writer = self.writer.clone().ok_or(PlaceError::NoControlLog)?;
        if let Some(shard) = shard {
            if shard >= self.shards {
                return Err(PlaceError::ShardOutOfRange {
                    shard,
                    shards: self.shards,
                });
            }
            let pins = self
                .pins
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if pins.len() >= PINS_MAX && !pins.contains_key(tenant) {
                return Err(PlaceError::TooManyPins);
            }
        }
        let record = ControlRecord::PlaceTenant {
            tenant: tenant.to_string(),
            shard,
        };
        self.append_applied(writer, &record, timeout)
            .await
            .map_err(PlaceError::Log)?;
        Ok(())
    }

    /// Appends `record` to the control log and waits (up to `timeout`) until this
    /// ingress's follower has applied it; the record's offset.
    async fn append_applied(
        &self,
        writer: Arc<dyn LogWriter>,
        record: &ControlRecord,
        timeout: Duration,
    ) -> Result<u64, String> {
        let record = encode_control(record);
        let appended = tokio::task::spawn_blocking(move || writer.append(vec![record]))
            .await
            .map_err(|error| error.to_string())?
            .map_err(|error| error.to_string())?;
        let offset = appended.first().map_or(0, |appended| appended.offset);
        self.wait_applied(offset, timeout).await?;
        Ok(offset)
    }

    fn webhooks(&self) -> std::sync::RwLockReadGuard<'_, Webhooks> {
        self.webhooks
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The tenant's endpoints, in order of creation.
    pub(crate) fn webhooks_of(&self, tenant: &str) -> Vec<Webhook> {
        self.webhooks().of_tenant(tenant).cloned().collect()
    }

    /// The tenant's endpoint `webhook` (another tenant's is `None`).
    pub(crate) fn webhook(&self, tenant: &str, webhook: &str) -> Option<Webhook> {
        self.webhooks().of(tenant, webhook).cloned()
    }

    /// Makes an endpoint (`url` and `event_types` already checked): a fresh id and signing
    /// key, recorded in the control log; the endpoint as this ingress then holds it.
    /// `TooMany` when the tenant has its cap of endpoints, also when a creation racing
    /// this one took the last place (the registry skipped this record everywhere).
    pub(crate) async fn create_webhook(
        &self,
        tenant: &str,
        url: String,
        event_types: Vec<WebhookEventType>,
        timeout: Duration,
    ) -> Result<Webhook, WebhookError> {
        let writer = self.writer.clone().ok_or(WebhookError::NoControlLog)?;
        if self.webhooks().of_tenant(tenant).count() >= WEBHOOKS_PER_TENANT_MAX {
            return Err(WebhookError::TooMany);
        }
        let webhook = format!("wh_{:032x}", rand::random::<u128>());
        let secret: [u8; WEBHOOK_SECRET_BYTES] = rand::random();
        let record = ControlRecord::WebhookCreated {
            tenant: tenant.to_string(),
            webhook: webhook.clone(),
            url,
            event_types,
            secret: secret.to_vec(),
        };
        self.append_applied(writer, &record, timeout)
            .await
            .map_err(WebhookError::Log)?;
        self.webhook(tenant, &webhook).ok_or(WebhookError::TooMany)
    }

    /// Deletes the tenant's endpoint, or enables it again (`enable`); `NotFound` when it
    /// has no such endpoint.
    pub(crate) async fn change_webhook(
        &self,
        tenant: &str,
        webhook: &str,
        change: WebhookChange,
        timeout: Duration,
    ) -> Result<Option<Webhook>, WebhookError> {
        let writer = self.writer.clone().ok_or(WebhookError::NoControlLog)?;
        if self.webhook(tenant, webhook).is_none() {
            return Err(WebhookError::NotFound);
        }
        let (tenant, webhook_id) = (tenant.to_string(), webhook.to_string());
        let record = match change {
            WebhookChange::Delete => ControlRecord::WebhookDeleted {
                tenant: tenant.clone(),
                webhook: webhook_id.clone(),
            },
            WebhookChange::Enable => ControlRecord::WebhookEnabled {
                tenant: tenant.clone(),
                webhook: webhook_id.clone(),
            },
        };
        self.append_applied(writer, &record, timeout)
            .await
            .map_err(WebhookError::Log)?;
        Ok(self.webhook(&tenant, &webhook_id))
    }

    /// The catalog, for a short read (never held across an `.await`).
    /// The catalog's lock, for a reader that takes it for short moments in turn
    /// (`SearchIndex::prepare`).
    pub(crate) fn catalog_lock(&self) -> &RwLock<crate::catalog::Catalog> {
        &self.catalog
    }

    pub(crate) fn catalog(&self) -> std::sync::RwLockReadGuard<'_, crate::catalog::Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a catalog record (`VenueSaved`, `TitleSaved`, `EventListed`) and waits
    /// until this ingress applied it.
    pub(crate) async fn save_catalog(
        &self,
        record: ControlRecord,
        timeout: Duration,
    ) -> Result<(), CatalogError> {
        use crate::catalog::Skipped;
        let writer = self.writer.clone().ok_or(CatalogError::NoControlLog)?;
        {
            let catalog = self.catalog();
            match &record {
                ControlRecord::VenueSaved { tenant, venue, .. }
                    if catalog.venue(tenant, venue).is_none()
                        && catalog.venue_count(tenant) >= crate::catalog::VENUES_PER_TENANT_MAX =>
                {
                    return Err(CatalogError::TooMany(Skipped::TooManyVenues));
                }
                ControlRecord::TitleSaved { tenant, title, .. }
                    if catalog.title(tenant, title).is_none()
                        && catalog.title_count(tenant) >= crate::catalog::TITLES_PER_TENANT_MAX =>
                {
                    return Err(CatalogError::TooMany(Skipped::TooManyTitles));
                }
                ControlRecord::VenueSaved { .. }
                | ControlRecord::TitleSaved { .. }
                | ControlRecord::EventListed { .. } => {}
                other => panic!("not a catalog record: {other:?}"),
            }
        }
        let (tenant, saved) = match &record {
            ControlRecord::VenueSaved { tenant, venue, .. } => {
                (tenant.clone(), Some((true, venue.clone())))
            }
            ControlRecord::TitleSaved { tenant, title, .. } => {
                (tenant.clone(), Some((false, title.clone())))
            }
            _ => (String::new(), None),
        };
        self.append_applied(writer, &record, timeout)
            .await
            .map_err(CatalogError::Log)?;
        // A creation that lost the race for the last place was skipped everywhere.
        let catalog = self.catalog();
        match saved {
            Some((true, venue)) if catalog.venue(&tenant, &venue).is_none() => {
                Err(CatalogError::TooMany(Skipped::TooManyVenues))
            }
            Some((false, title)) if catalog.title(&tenant, &title).is_none() => {
                Err(CatalogError::TooMany(Skipped::TooManyTitles))
            }
            _ => Ok(()),
        }
    }

    /// The hold's refund, if its payment is due back or was refunded.
    pub(crate) fn refund_of(&self, hold: engine::HoldId) -> Option<HoldRefund> {
        self.refunds
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&hold)
            .cloned()
    }

    /// Records that a succeeded payment is due back (the effects worker refunds it) and
    /// waits until this ingress applied the record.
    pub(crate) async fn refund_due(
        &self,
        record: ControlRecord,
        timeout: Duration,
    ) -> Result<(), WebhookError> {
        assert!(matches!(record, ControlRecord::PaymentRefundDue { .. }));
        let writer = self.writer.clone().ok_or(WebhookError::NoControlLog)?;
        self.append_applied(writer, &record, timeout)
            .await
            .map(|_| ())
            .map_err(WebhookError::Log)
    }

    /// Whether `pseudonym` was erased. Perf: asked once or twice by every user's request
    /// and nearly always of an empty or small set, so an empty one answers without
    /// hashing the pseudonym.
    pub(crate) fn is_erased(&self, pseudonym: &str) -> bool {
        let erased = self
            .erased
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        !erased.is_empty() && erased.contains(pseudonym)
    }

    /// Records the erasure of `pseudonym` in the control log and waits until this
    /// ingress applied it (its key is then destroyed here); the record's offset.
    pub(crate) async fn erase_user(
        &self,
        pseudonym: &str,
        timeout: Duration,
    ) -> Result<u64, EraseError> {
        let writer = self.writer.clone().ok_or(EraseError::NoControlLog)?;
        {
            let erased = self
                .erased
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if erased.contains(pseudonym) {
                return Err(EraseError::AlreadyErased);
            }
            if erased.len() >= ERASED_USERS_MAX {
                return Err(EraseError::TooMany);
            }
        }
        let record = ControlRecord::UserErased {
            pseudonym: pseudonym.to_string(),
        };
        self.append_applied(writer, &record, timeout)
            .await
            .map_err(EraseError::Log)
    }

    fn apply(&self, offset: u64, payload: &[u8]) {
        match decode_control(payload) {
            Ok(ControlRecord::UserErased { pseudonym }) => {
                {
                    let mut erased = self
                        .erased
                        .write()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    if erased.len() < ERASED_USERS_MAX {
                        erased.insert(pseudonym.clone());
                    } else {
                        tracing::error!(offset, "erasure past the cap: the key is still destroyed");
                    }
                }
                // Applied again at every start (the follower reads from offset 0): a no-op
                // once the key is gone, and the identity never comes back from a log.
                if let Err(error) = self.personal.forget(&pseudonym) {
                    // The record stays applied (the pseudonym resolves to nothing through
                    // `is_erased`); the key is destroyed again at the next start.
                    tracing::error!(offset, %error, "an erased user's key could not be destroyed");
                }
            }
            Ok(ControlRecord::PaymentRefundDue {
                hold,
                payment_id,
                reason,
                ..
            }) => {
                let mut refunds = self
                    .refunds
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                refunds.entry(hold).or_insert(HoldRefund {
                    payment_id,
                    reason,
                    refund_id: None,
                });
                forget_oldest_refunds(&mut refunds, HOLD_REFUNDS_KEPT_MAX);
            }
            Ok(ControlRecord::PaymentRefunded {
                hold,
                payment_id,
                refund_id,
                ..
            }) => {
                let mut refunds = self
                    .refunds
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let entry = refunds.entry(hold).or_insert(HoldRefund {
                    payment_id: payment_id.clone(),
                    reason: String::new(),
                    refund_id: None,
                });
                if entry.payment_id == payment_id {
                    entry.refund_id = Some(refund_id);
                }
                forget_oldest_refunds(&mut refunds, HOLD_REFUNDS_KEPT_MAX);
            }
            Ok(
                record @ (ControlRecord::WebhookCreated { .. }
                | ControlRecord::WebhookDeleted { .. }
                | ControlRecord::WebhookDisabled { .. }
                | ControlRecord::WebhookEnabled { .. }),
            ) => {
                let applied = self
                    .webhooks
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .apply(offset, &record);
                if let Err(skipped) = applied {
                    tracing::warn!(offset, ?skipped, "webhook control record skipped");
                }
            }
            Ok(ControlRecord::VenueSaved {
                tenant,
                venue,
                record,
            }) => {
                let saved = self
                    .catalog
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .save_venue(&tenant, &venue, record);
                if let Err(skipped) = saved {
                    tracing::warn!(offset, ?skipped, "venue control record skipped");
                }
            }
            Ok(ControlRecord::TitleSaved {
                tenant,
                title,
                record,
            }) => {
                let saved = self
                    .catalog
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .save_title(&tenant, &title, record);
                match saved {
                    Ok(()) => self.search_changes.note_title(&tenant, &title),
                    Err(skipped) => {
                        tracing::warn!(offset, ?skipped, "title control record skipped")
                    }
                }
            }
            Ok(ControlRecord::EventListed { tenant, listing }) => {
                let event = listing.event;
                self.catalog
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .list(&tenant, listing);
                self.search_changes.note_event(event);
            }
            Ok(ControlRecord::PlaceTenant { tenant, shard }) => {
                let mut pins = self
                    .pins
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                match shard {
                    // A record the appender checked; one from another deployment's shape is
                    // skipped, identically on every ingress.
                    Some(shard)
                        if shard < self.shards
                            && (pins.len() < PINS_MAX || pins.contains_key(&tenant)) =>
                    {
                        pins.insert(tenant, shard);
                    }
                    Some(shard) => {
                        tracing::error!(
                            offset,
                            tenant,
                            shard,
                            shards = self.shards,
                            "control record skipped: shard out of range or too many pins"
                        );
                    }
                    None => {
                        pins.remove(&tenant);
                    }
                }
            }
            Ok(
                record @ (ControlRecord::TenantCreated { .. }
                | ControlRecord::TenantSuspended { .. }
                | ControlRecord::TenantResumed { .. }
                | ControlRecord::ApiKeyIssued { .. }
                | ControlRecord::ApiKeyRevoked { .. }
                | ControlRecord::UserTokenKeySet { .. }
                | ControlRecord::UserTokenKeyRemoved { .. }),
            ) => {
                let applied = self
                    .accounts
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .apply(offset, &record);
                if let Err(skipped) = applied {
                    tracing::warn!(offset, ?skipped, "account control record skipped");
                }
            }
            Err(error) => tracing::error!(offset, %error, "control record skipped"),
        }
        self.applied.send_replace(offset + 1);
    }

    /// Follows the control log from offset 0 on a thread of its own until `stop`, and
    /// keeps [`Freshness`] up to date: between polls it asks the log's end (at most every
    /// [`END_ASK_INTERVAL`]) and notes when its position reached an end it saw.
    pub(crate) fn follow(
        self: &Arc<Self>,
        mut reader: Box<dyn LogReader>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        let control = Arc::clone(self);
        std::thread::Builder::new()
            .name("control-follower".into())
            .spawn(move || {
                let mut end_asked_at: Option<std::time::Instant> = None;
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    match reader.poll(POLL_RECORDS_MAX, POLL_WAIT) {
                        Ok(records) => records
                            .iter()
                            .for_each(|record| control.apply(record.offset, &record.payload)),
                        Err(error) => {
                            tracing::warn!(%error, "cannot read the control log; retrying");
                            std::thread::sleep(POLL_WAIT);
                            continue;
                        }
                    }
                    let Some(freshness) = &control.freshness else {
                        continue;
                    };
                    let position = reader.position();
                    let wants_end = {
                        let mut freshness = freshness
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        freshness.reached(position);
                        control.caught_up.notify_all();
                        freshness.wants_end()
                    };
                    let due = end_asked_at.is_none_or(|at| at.elapsed() >= END_ASK_INTERVAL);
                    if wants_end && due {
                        let asked_at = std::time::Instant::now();
                        end_asked_at = Some(asked_at);
                        match reader.end_offset() {
                            Ok(end) => {
                                let mut freshness = freshness
                                    .lock()
                                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                                freshness.observed_end(end, asked_at);
                                freshness.reached(position);
                                control.caught_up.notify_all();
                            }
                            Err(error) => {
                                tracing::warn!(%error, "cannot ask the control log's end")
                            }
                        }
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past the cap the oldest holds' refunds are forgotten first.
    #[test]
    fn refunds_kept_are_bounded_oldest_first() {
        let refund = |payment: &str| HoldRefund {
            payment_id: payment.into(),
            reason: "late".into(),
            refund_id: None,
        };
        let mut refunds: BTreeMap<engine::HoldId, HoldRefund> = [3, 1, 2]
            .into_iter()
            .map(|hold| (engine::HoldId(hold), refund(&format!("pi_{hold}"))))
            .collect();
        forget_oldest_refunds(&mut refunds, 2);
        assert_eq!(
            refunds.keys().copied().collect::<Vec<_>>(),
            [engine::HoldId(2), engine::HoldId(3)]
        );
    }

    /// An erasure marks the pseudonym erased and destroys its key in this ingress's
    /// store; applied again (every start reads the control log from 0) it changes nothing.
    #[test]
    fn an_erasure_destroys_the_users_key_and_is_applied_again_harmlessly() {
        use crate::personal_data::Identity;
        let personal = Arc::new(PersonalData::in_memory());
        personal.remember("u_a", "alice@example.com").unwrap();
        personal.remember("u_b", "bob@example.com").unwrap();
        let control = Control::new(
            1,
            None,
            Arc::clone(&personal),
            Vec::new(),
            Duration::from_secs(1),
        );
        let erasure = encode_control(&ControlRecord::UserErased {
            pseudonym: "u_a".into(),
        });
        for offset in [0, 1] {
            control.apply(offset, &erasure);
            assert!(control.is_erased("u_a") && !control.is_erased("u_b"));
            assert_eq!(personal.resolve("u_a").unwrap(), Identity::Unknown);
            assert_eq!(
                personal.resolve("u_b").unwrap(),
                Identity::Known("bob@example.com".into())
            );
        }
        assert_eq!(*control.applied.borrow(), 2);
    }

    #[test]
    fn placement_is_stable_spread_and_follows_pins() {
        let control = Control::new(
            4,
            None,
            Arc::new(PersonalData::in_memory()),
            Vec::new(),
            Duration::from_secs(1),
        );
        let request = b"the same request";
        let first = control.place("acme", Some("key-1"), request);
        // A retry (same key, any body) goes where the first try went.
        assert_eq!(control.place("acme", Some("key-1"), b"another body"), first);
        let spread: std::collections::BTreeSet<u32> = (0..64)
            .map(|key| control.place("acme", Some(&format!("key-{key}")), request))
            .collect();
        assert_eq!(spread.len(), 4, "64 keys reach every shard: {spread:?}");
        control.apply(
            0,
            &encode_control(&ControlRecord::PlaceTenant {
                tenant: "acme".into(),
                shard: Some(3),
            }),
        );
        assert!((0..16).all(|key| control.place("acme", Some(&format!("key-{key}")), request) == 3));
        assert_eq!(control.pin("acme"), Some(3));
        // Out of range (another deployment's record) and undecodable records are skipped.
        control.apply(
            1,
            &encode_control(&ControlRecord::PlaceTenant {
                tenant: "acme".into(),
                shard: Some(9),
            }),
        );
        control.apply(2, b"\x01\xff");
        assert_eq!(control.pin("acme"), Some(3));
        control.apply(
            3,
            &encode_control(&ControlRecord::PlaceTenant {
                tenant: "acme".into(),
                shard: None,
            }),
        );
        assert_eq!(control.pin("acme"), None);
        assert_eq!(*control.applied.borrow(), 4);
        assert_eq!(
            Control::new(
                1,
                None,
                Arc::new(PersonalData::in_memory()),
                Vec::new(),
                Duration::from_secs(1)
            )
            .place("acme", None, request),
            0
        );
    }
}
