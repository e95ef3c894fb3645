//! A user's notifications (`GET /v1/me/notifications`): the webhook messages about them
//! (`engine::messages::user_messages_of`: the same types, bodies and ids), kept per shard
//! in the read model for frontends that cannot receive webhooks.
//!
//! Bounded twice: a user keeps their newest `per_user_max` (older ones are dropped), and
//! a shard keeps at most `users_max` users (the one told least recently is forgotten
//! first). A read says when anything after its cursor was dropped (`older_dropped`), so a
//! client knows to reload its state rather than trust the list as complete. A user
//! created after others were forgotten cannot know whether some forgotten ones were
//! theirs, so a read answers `older_dropped` for them too (conservative, never silent).
//!
//! The same table keeps each user's bookings (`GET /v1/me/bookings`), which are never
//! forgotten: one record a user, so that a confirm finds its buyer once for both (a new
//! buyer's record is made by the booking and found again, warm, by its message; two
//! tables of users cost the follower a second cold probe and insert a confirm). Encoded
//! as the two tables they were (the read model's `user_bookings` and this type's
//! `users`), so snapshots are unchanged.
//!
//! Cursors: a notification's place in its shard is its outcome's input offset and its
//! index among the outcome's messages (its id `msg_<shard>_<offset>_<index>`), in the
//! order things happened. A cursor says, for every shard, the place of the last
//! notification read (or none), so shards merge without a clock: a read returns every
//! kept notification after each shard's place.

use crate::cow_map::CowMap;
use engine::messages::{KeptMessage, UserNote};
use engine::{BookingId, Outcome, UserName};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;

/// Notifications a user keeps (`http.notifications_per_user_max`).
pub(crate) const PER_USER_MAX_DEFAULT: usize = 100;
/// Users with notifications a shard keeps (`http.notification_users_max`).
pub(crate) const USERS_MAX_DEFAULT: usize = 10_000;

/// Where a notification sits in its shard's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Place {
    /// The input offset of the outcome that made it.
    pub(crate) offset: u64,
    /// Its index among that outcome's messages.
    pub(crate) index: u32,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Notification {
    pub(crate) place: Place,
    /// The engine's log time of its outcome (merges shards in time order).
    pub(crate) time_ms: u64,
    /// `{"type", "timestamp", "data"}`, as `engine::messages` makes it: kept as the
    /// part of its outcome it is rendered from when read ([`Notification::body`]: most
    /// are never read), or as text (a
    /// body that is the user's alone, or one loaded from a snapshot). Encoded as its text
    /// either way, so snapshots are unchanged.
    #[serde(deserialize_with = "text_body")]
    body: Body,
}

#[derive(Clone, Debug)]
enum Body {
    Text(Box<str>),
    /// The message this part of its outcome made, as everyone is told it: the part
    /// alone, not the shared outcome (see `KeptMessage`).
    Kept(Box<KeptMessage>),
}

impl Notification {
    /// `{"type", "timestamp", "data"}`.
    pub(crate) fn body(&self) -> Cow<'_, str> {
        match &self.body {
            Body::Text(text) => Cow::Borrowed(text),
            Body::Kept(message) => {
                Cow::Owned(String::from_utf8(message.body()).expect("JSON bodies are UTF-8"))
            }
        }
    }
}

/// As the derived form did with a `String` body (snapshots keep their bytes).
impl Serialize for Notification {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields = serializer.serialize_struct("Notification", 3)?;
        fields.serialize_field("place", &self.place)?;
        fields.serialize_field("time_ms", &self.time_ms)?;
        fields.serialize_field("body", &*self.body())?;
        fields.end()
    }
}

fn text_body<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Body, D::Error> {
    Ok(Body::Text(String::deserialize(deserializer)?.into()))
}

/// Users by touch: see [`Kept`]'s `recency`.
type Recency = engine::chunked::ChunkedDeque<(u64, u32), 1024>;

/// Where a user's notifications are kept: a slot of [`Kept`]'s, and the slot's
/// generation when they were put there. The slot's generation moves on when they are
/// forgotten, so a record whose notifications are gone is known by a look at the slot:
/// the forgetting neither finds nor writes the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NotesRef {
    slot: u32,
    generation: NonZeroU32,
}

/// What a shard keeps of one user: their bookings, and where their notifications are
/// kept while they are among the `users_max` told most recently. A record with neither
/// is removed by the sweep ([`Notifications::sweep`]).
#[derive(Clone, Debug, Default)]
struct UserRecord {
    /// In the order they were made (`GET /v1/me/bookings`); never forgotten.
    bookings: Vec<BookingId>,
    /// Stale once its slot's generation has moved on (the notifications were forgotten).
    notes: Option<NotesRef>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct UserNotifications {
    /// Oldest first.
    kept: VecDeque<Notification>,
    /// The newest place dropped from `kept`, or that may have been this user's when the
    /// record was made (see the module's doc); `None`: nothing was.
    dropped_through: Option<Place>,
    /// This user's latest touch: the one entry of theirs in `Kept::recency` that is not
    /// stale.
    touched: u64,
}

/// A place for one user's notifications.
#[derive(Clone, Debug)]
struct Slot {
    /// Moves on (from 1) each time the slot's notifications are forgotten; a slot whose
    /// every generation was given out is retired, never used again.
    generation: NonZeroU32,
    /// While the slot is free: the next free one.
    next_free: Option<u32>,
    /// Whether the user had bookings when last told: if so, their record stays when their
    /// notifications are forgotten (bookings are never forgotten); if not, it may be left
    /// with neither, for the sweep.
    buyer: bool,
    /// `None` while the slot is free (or retired).
    notes: Option<UserNotifications>,
}

/// Slots a chunk: the copy of a written chunk after a snapshot's copy is a few dozen
/// users' notifications, not thousands.
const SLOTS_CHUNK: usize = 256;

/// The users' kept notifications and the order in which they were told: everything the
/// forgetting of the least recently told user touches (not the users' records).
///
/// Perf: the notifications were boxed in the users' records and the recency named users by
/// name, so forgetting the least recently told user (once per new user told when the shard
/// is full: nearly every new buyer) probed the users' table for that user's record, cold:
/// about a third of its misses, and half of the forgetting's share of the follower (a fifth
/// of the follower under hold + confirm; BENCHMARKS.md, "Session 60" and "Session 61").
/// Here the recency names a slot, and a record learns that its notifications are gone from
/// the slot's generation when it is next looked up.
#[derive(Clone, Debug)]
struct Kept {
    /// In chunks behind `Arc`s, like the users' table and the recency: the read model's copy
    /// for its snapshot copies pointers, not every user's notifications.
    slots: engine::chunked::ChunkedDeque<Slot, SLOTS_CHUNK>,
    /// The first free slot; free slots are listed through their `next_free`.
    free: Option<u32>,
    /// Users by when they were last told something, the least recent first: a touch
    /// pushes `(touched, slot)` at the back and leaves the user's earlier entry where it
    /// is, stale (its `touched` is not the slot's any more). Stale entries are skipped when
    /// the front is forgotten and dropped when they outnumber the users
    /// ([`Kept::compact_recency`]). A queue, not an ordered map: a touch is a push instead
    /// of a removal and an insertion in a tree (with a shard full of users, every booking
    /// forgot one user and told another).
    recency: Recency,
    /// How many slots keep notifications (at most `users_max`).
    told_users: usize,
    /// The newest place any forgotten user had kept or dropped.
    forgotten_through: Option<Place>,
    /// Records the sweep owes a visit (see [`Notifications::sweep`]).
    sweep_owed: usize,
}

impl Kept {
    fn new() -> Kept {
        Kept {
            slots: engine::chunked::ChunkedDeque::new(),
            free: None,
            recency: Recency::new(),
            told_users: 0,
            forgotten_through: None,
            sweep_owed: 0,
        }
    }

    /// The notifications `at` names, if they are still kept.
    fn notes(&self, at: NotesRef) -> Option<&UserNotifications> {
        let slot = self
            .slots
            .get(at.slot as usize)
            .expect("a record names a slot");
        if slot.generation != at.generation {
            return None;
        }
        slot.notes.as_ref()
    }

    /// Keeps a user's `notes` in a free slot (or a new one).
    fn keep(&mut self, notes: UserNotifications, buyer: bool) -> NotesRef {
        self.told_users += 1;
        match self.free {
            Some(free) => {
                let slot = self.slots.get_mut(free as usize).expect("a free slot");
                assert!(slot.notes.is_none(), "a free slot keeps nothing");
                self.free = slot.next_free.take();
                slot.notes = Some(notes);
                slot.buyer = buyer;
                NotesRef {
                    slot: free,
                    generation: slot.generation,
                }
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("under 2^32 users kept");
                self.slots.push_back(Slot {
                    generation: NonZeroU32::MIN,
                    next_free: None,
                    buyer,
                    notes: Some(notes),
                });
                NotesRef {
                    slot,
                    generation: NonZeroU32::MIN,
                }
            }
        }
    }

    /// Whether a recency entry is its user's latest touch (not stale).
    fn is_current(&self, (touched, slot): (u64, u32)) -> bool {
        self.slots
            .get(slot as usize)
            .and_then(|slot| slot.notes.as_ref())
            .is_some_and(|notes| notes.touched == touched)
    }

    /// Drops the stale recency entries: at most one entry per user remains.
    fn compact_recency(&mut self) {
        let mut current = Recency::new();
        for &entry in self.recency.iter() {
            if self.is_current(entry) {
                current.push_back(entry);
            }
        }
        self.recency = current;
        debug_assert_eq!(self.recency.len(), self.told_users);
    }

    /// Forgets the notifications of the user told least recently. Their record is not
    /// touched: its `NotesRef` is stale from now on. A user without bookings when last
    /// told may leave a record with neither bookings nor notifications: the sweep is owed
    /// its visits ([`Notifications::sweep`]).
    fn forget_least_recent(&mut self) {
        while let Some((touched, slot)) = self.recency.take_front() {
            if !self.is_current((touched, slot)) {
                continue; // stale: the user was told since, or forgotten
            }
            let free = self.free;
            let place = self.slots.get_mut(slot as usize).expect("a current slot");
            let notes = place.notes.take().expect("a current slot keeps notes");
            if !place.buyer {
                self.sweep_owed += SWEEP_VISITS_PER_FORGOTTEN;
            }
            if let Some(next) = place.generation.checked_add(1) {
                place.generation = next;
                place.next_free = free;
                self.free = Some(slot);
            } // else retired: a record may still name its last generation
            self.told_users -= 1;
            let newest = notes
                .kept
                .back()
                .map(|notification| notification.place)
                .max(notes.dropped_through);
            self.forgotten_through = self.forgotten_through.max(newest);
            return;
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "Decoded")]
pub(crate) struct Notifications {
    /// Hashed, not ordered: each message looks its user up (encoded in name order all the
    /// same). In shards behind `Arc`s (`cow_map`), like the slots' chunks: the read model's
    /// copy for its snapshot copies pointers, not every user's record.
    /// Every user with bookings or kept notifications (see the module's doc), and users
    /// whose notifications were forgotten until the next sweep.
    users: CowMap<Arc<str>, UserRecord>,
    /// How many records `users` has.
    records: usize,
    /// How many of them have bookings (never forgotten).
    buyers: usize,
    kept: Kept,
    /// The sweep's next shard of `users` (see [`Notifications::sweep`]).
    sweep_shard: u64,
    touches: u64,
    per_user_max: usize,
    users_max: usize,
}

/// Records the sweep visits for each forgotten user who may have left a bare record.
const SWEEP_VISITS_PER_FORGOTTEN: usize = 4;

/// A user's notifications after a place.
pub(crate) struct Page<'a> {
    pub(crate) notifications: Vec<&'a Notification>,
    /// Something after the place was dropped (or may have been): the list is not whole.
    pub(crate) older_dropped: bool,
}

impl Notifications {
    pub(crate) fn new(per_user_max: usize, users_max: usize) -> Notifications {
        let mut notifications = Notifications {
            users: CowMap::default(),
            records: 0,
            buyers: 0,
            kept: Kept::new(),
            sweep_shard: 0,
            touches: 0,
            per_user_max,
            users_max,
        };
        notifications.set_limits(per_user_max, users_max);
        notifications
    }

    /// Takes this ingress's limits (a model loaded from a snapshot may have been kept
    /// under others): what is over them is dropped now.
    pub(crate) fn set_limits(&mut self, per_user_max: usize, users_max: usize) {
        assert!(per_user_max > 0 && users_max > 0);
        self.per_user_max = per_user_max;
        self.users_max = users_max;
        while self.kept.told_users > users_max {
            self.kept.forget_least_recent();
        }
        for index in 0..self.kept.slots.len() {
            let slot = self.kept.slots.get_mut(index).expect("in range");
            if let Some(notes) = slot.notes.as_mut() {
                Self::trim(notes, per_user_max);
            }
        }
        self.sweep();
    }

    /// Adds `booking` to `user`'s bookings.
    pub(crate) fn add_booking(&mut self, user: &UserName, booking: BookingId) {
        // One probe, a known user's record or a new one (its key the outcome's `Arc`).
        let mut made = false;
        let bookings = &mut self
            .users
            .get_or_insert_with(user, || {
                made = true;
                UserRecord::default()
            })
            .bookings;
        if bookings.is_empty() {
            bookings.reserve_exact(1); // most buyers book once: 8 bytes, not a Vec's first 32
            self.buyers += 1;
        }
        bookings.push(booking);
        self.records += usize::from(made);
    }

    /// `user`'s bookings, in the order they were made.
    pub(crate) fn bookings(&self, user: &str) -> &[BookingId] {
        self.users
            .get(user)
            .map_or(&[], |record| record.bookings.as_slice())
    }

    /// Keeps the messages one outcome told its users (in its order); returns the users
    /// told something (each once, in name order), for their long-polls.
    pub(crate) fn record(
        &mut self,
        outcome: &Arc<Outcome>,
        messages: Vec<UserNote>,
    ) -> Vec<UserName> {
        let per_user_max = self.per_user_max;
        let mut told: Vec<UserName> = Vec::with_capacity(messages.len());
        for message in messages {
            let user = &message.user;
            let notification = Notification {
                place: Place {
                    offset: outcome.offset,
                    index: message.index,
                },
                time_ms: outcome.time_ms,
                body: match message.body {
                    Some(body) => Body::Text(
                        String::from_utf8(body)
                            .expect("JSON bodies are UTF-8")
                            .into(),
                    ),
                    None => Body::Kept(Box::new(
                        KeptMessage::of(outcome, message.source)
                            .expect("a note names a message of its outcome"),
                    )),
                },
            };
            self.tell(user, notification, per_user_max);
            told.push(Arc::clone(user));
        }
        // One outcome may tell 200,000 users (a confirm that ends every waiter): duplicates
        // go in one sort at the end, not through a set (or a scan) per message.
        told.sort_unstable();
        told.dedup();
        told
    }

    /// `user`'s kept notifications after `after` (all of them without it), oldest first.
    pub(crate) fn after(&self, user: &str, after: Option<Place>) -> Page<'_> {
        let Some(record) = self
            .users
            .get(user)
            .and_then(|record| self.kept.notes(record.notes?))
        else {
            return Page {
                notifications: Vec::new(),
                older_dropped: self.kept.forgotten_through > after,
            };
        };
        let start = after.map_or(0, |after| {
            record
                .kept
                .partition_point(|notification| notification.place <= after)
        });
        Page {
            notifications: record.kept.range(start..).collect(),
            older_dropped: record.dropped_through > after,
        }
    }

    /// Keeps `notification` for `user`, the user's newest touch.
    ///
    /// Perf: this runs on the follower, before the writers of the batch are answered. A
    /// user already told (most messages under load) is found and told in one probe of the
    /// users' map and a look at their slot; a known user not told lately (a new buyer: the
    /// booking made their record just before) in the same probe, after forgetting the least
    /// recent user when full (which probes nothing); a new one in one probe and one insert.
    fn tell(&mut self, user: &UserName, notification: Notification, per_user_max: usize) {
        self.touches += 1;
        let touched = self.touches;
        if self.kept.recency.len() >= 2 * self.kept.told_users + 64 {
            self.kept.compact_recency();
        }
        let keep = |notes: &mut UserNotifications, notification: Notification| {
            debug_assert!(notes
                .kept
                .back()
                .is_none_or(|last| last.place < notification.place));
            notes.kept.push_back(notification);
            Self::trim(notes, per_user_max);
        };
        let mut made = false;
        let record = self.users.get_or_insert_with(user, || {
            made = true;
            UserRecord::default()
        });
        self.records += usize::from(made);
        let buyer = !record.bookings.is_empty();
        let kept = &mut self.kept;
        let slot = match record.notes.filter(|at| kept.notes(*at).is_some()) {
            Some(at) => {
                let slot = kept
                    .slots
                    .get_mut(at.slot as usize)
                    .expect("a record names a slot");
                slot.buyer = buyer;
                let notes = slot.notes.as_mut().expect("checked above");
                notes.touched = touched;
                keep(notes, notification);
                at.slot
            }
            None => {
                // Forgotten first: the new user's notes start past what it forgot.
                if kept.told_users >= self.users_max {
                    kept.forget_least_recent();
                }
                let mut notes = UserNotifications {
                    kept: VecDeque::new(),
                    dropped_through: kept.forgotten_through,
                    touched,
                };
                keep(&mut notes, notification);
                let at = kept.keep(notes, buyer);
                record.notes = Some(at);
                at.slot
            }
        };
        kept.recency.push_back((touched, slot));
        if kept.sweep_owed > 0 {
            self.sweep();
        }
    }

    /// Removes records with neither bookings nor kept notifications (and clears stale
    /// `NotesRef`s in those that stay), a shard of `users` at a time, while it owes
    /// visits: each forgotten user who may have left such a record owes
    /// [`SWEEP_VISITS_PER_FORGOTTEN`], and a shard pays what it holds (an empty one, one).
    /// So a pass over all shards is paid for by a quarter as many such users as it visits:
    /// fewer were left bare meanwhile, and the bare records never outnumber half of the
    /// others (plus the shard count). A step's pause is one shard's entries (a 1,024th of
    /// the users), never the whole table; buyers forgotten (nearly every forgotten user
    /// under hold + confirm) owe nothing.
    fn sweep(&mut self) {
        while self.kept.sweep_owed > 0 {
            let kept = &self.kept;
            let mut removed = 0;
            let visited = self.users.retain_in_shard(self.sweep_shard, |_, record| {
                if record.notes.is_some_and(|at| kept.notes(at).is_none()) {
                    record.notes = None;
                }
                let stays = record.notes.is_some() || !record.bookings.is_empty();
                removed += usize::from(!stays);
                stays
            });
            self.records -= removed;
            self.kept.sweep_owed = self.kept.sweep_owed.saturating_sub(visited.max(1));
            self.sweep_shard = (self.sweep_shard + 1) % crate::cow_map::NAME_SHARDS;
        }
    }

    /// Drops a user's oldest notifications past `per_user_max`, remembering the newest
    /// place dropped.
    fn trim(notes: &mut UserNotifications, per_user_max: usize) {
        while notes.kept.len() > per_user_max {
            let dropped = notes.kept.pop_front().expect("over the cap");
            notes.dropped_through = notes.dropped_through.max(Some(dropped.place));
        }
    }

    #[cfg(test)]
    fn users(&self) -> usize {
        self.kept.told_users
    }

    /// The users with kept notifications, by name.
    fn told(&self) -> impl Iterator<Item = (&Arc<str>, &UserNotifications)> + '_ {
        self.users
            .iter()
            .filter_map(|(user, record)| Some((user, self.kept.notes(record.notes?)?)))
    }

    /// The bookings' half, encoded as the read model's `user_bookings` was: a map from
    /// each user with bookings to them, in name order.
    pub(crate) fn bookings_encoded(&self) -> impl Serialize + '_ {
        Sorted(
            self.users
                .iter()
                .filter(|(_, record)| !record.bookings.is_empty())
                .map(|(user, record)| (user, &record.bookings))
                .collect(),
        )
    }

    /// Gives each user of `bookings` (the read model's `user_bookings`, as decoded) their
    /// bookings: how a model loaded from a snapshot gets them back.
    pub(crate) fn with_bookings(mut self, bookings: CowMap<Arc<str>, Vec<BookingId>>) -> Self {
        for (user, bookings) in bookings.iter() {
            for booking in bookings {
                self.add_booking(user, *booking);
            }
        }
        self
    }
}

/// Encoded with the users in name order and the recency as a map from each user's
/// latest touch to their name (stale entries left out): the bytes of the `BTreeMap` the
/// recency was before it became a queue, and of the model before its notifications moved
/// into slots.
impl Serialize for Notifications {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut encoded = serializer.serialize_struct("Notifications", 6)?;
        encoded.serialize_field("users", &Sorted(self.told().collect()))?;
        encoded.serialize_field("recency", &CurrentRecency(self))?;
        encoded.serialize_field("touches", &self.touches)?;
        encoded.serialize_field("forgotten_through", &self.kept.forgotten_through)?;
        encoded.serialize_field("per_user_max", &self.per_user_max)?;
        encoded.serialize_field("users_max", &self.users_max)?;
        encoded.end()
    }
}

/// Entries in name order: the bytes `CowMap` (and the `BTreeMap` before it) wrote.
struct Sorted<'a, V>(BTreeMap<&'a Arc<str>, V>);

impl<V: Serialize> Serialize for Sorted<'_, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// The recency's current entries (one per user, in order of touch), by name.
struct CurrentRecency<'a>(&'a Notifications);

impl Serialize for CurrentRecency<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let notifications = self.0;
        let kept = &notifications.kept;
        // Each slot's user, by the records that name it (a snapshot's work, not a touch's).
        let mut names: Vec<Option<&Arc<str>>> = vec![None; kept.slots.len()];
        for (user, record) in notifications.users.iter() {
            if let Some(at) = record.notes.filter(|at| kept.notes(*at).is_some()) {
                assert!(names[at.slot as usize].is_none(), "one user a slot");
                names[at.slot as usize] = Some(user);
            }
        }
        let mut map = serializer.serialize_map(Some(kept.told_users))?;
        let mut written = 0;
        for &(touched, slot) in kept.recency.iter() {
            if kept.is_current((touched, slot)) {
                let name = names[slot as usize].expect("a kept slot's user has a record");
                map.serialize_entry(&touched, name)?;
                written += 1;
            }
        }
        assert_eq!(written, kept.told_users, "one current entry per user");
        map.end()
    }
}

/// [`Notifications`] as [`Notifications::serialize`] wrote it.
#[derive(Deserialize)]
struct Decoded {
    users: BTreeMap<Arc<str>, UserNotifications>,
    recency: BTreeMap<u64, Arc<str>>,
    touches: u64,
    forgotten_through: Option<Place>,
    per_user_max: usize,
    users_max: usize,
}

/// Refuses a recency that is not one latest touch per kept user (each kept user's
/// `touched`): taken as it was, it would leave a user without a current entry, and the
/// next encoding's check of one entry per user would panic on the follower.
impl TryFrom<Decoded> for Notifications {
    type Error = String;

    fn try_from(decoded: Decoded) -> Result<Notifications, String> {
        let Decoded {
            users,
            recency,
            touches,
            forgotten_through,
            per_user_max,
            users_max,
        } = decoded;
        for (touched, user) in &recency {
            if users
                .get(&**user)
                .is_none_or(|record| record.touched != *touched)
            {
                return Err(format!("touch {touched} is not a kept user's latest"));
            }
        }
        if recency.len() != users.len() {
            return Err(format!(
                "{} latest touches for {} users",
                recency.len(),
                users.len()
            ));
        }
        let mut kept = Kept::new();
        kept.forgotten_through = forgotten_through;
        let mut records = CowMap::default();
        let mut slot_of: BTreeMap<Arc<str>, u32> = BTreeMap::new();
        for (user, notes) in users {
            // Not known to be a buyer (the bookings come after, `with_bookings`): a record
            // left bare is swept, one that is not is only visited.
            let at = kept.keep(notes, false);
            slot_of.insert(Arc::clone(&user), at.slot);
            records.insert(
                user,
                UserRecord {
                    bookings: Vec::new(),
                    notes: Some(at),
                },
            );
        }
        // In order of touch: the map's key order.
        for (touched, user) in recency {
            kept.recency.push_back((touched, slot_of[&user]));
        }
        Ok(Notifications {
            users: records,
            records: slot_of.len(),
            buyers: 0,
            kept,
            sweep_shard: 0,
            touches,
            per_user_max,
            users_max,
        })
    }
}

/// What a cursor looks like, for the message that refuses one.
pub(crate) const CURSOR_FORM: &str =
    "a cursor this API answered: one part per shard, joined by '.', each 'n' or <offset>_<index>";

/// A cursor's places, one per shard; an error says what is wrong.
pub(crate) fn parse_cursor(text: &str, shards: usize) -> Result<Vec<Option<Place>>, String> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != shards {
        return Err(format!(
            "after has {} part(s) and this deployment has {shards} shard(s); expected {CURSOR_FORM}",
            parts.len()
        ));
    }
    parts
        .into_iter()
        .map(|part| {
            if part == "n" {
                return Ok(None);
            }
            let place = part.split_once('_').and_then(|(offset, index)| {
                // At most 19 and 9 digits: always a u64 and a u32 (the document's pattern).
                let digits = |text: &str, max: usize| {
                    (1..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
                };
                (digits(offset, 19) && digits(index, 9)).then_some(())?;
                Some(Place {
                    offset: offset.parse().ok()?,
                    index: index.parse().ok()?,
                })
            });
            place
                .map(Some)
                .ok_or_else(|| format!("after has the part {part:?}; expected {CURSOR_FORM}"))
        })
        .collect()
}

pub(crate) fn format_cursor(places: &[Option<Place>]) -> String {
    places
        .iter()
        .map(|place| match place {
            None => "n".to_string(),
            Some(place) => format!("{}_{}", place.offset, place.index),
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::messages::MessageSource;

    fn told(user: &str, index: u32) -> UserNote {
        UserNote {
            user: user.into(),
            index,
            source: MessageSource::Reply,
            kind: engine::webhook::WebhookEventType::HoldExpired,
            body: Some(format!("{{\"n\":{index}}}").into_bytes()),
        }
    }

    /// An outcome at `offset` and `time_ms` (the notes carry their own bodies).
    fn at_offset(offset: u64, time_ms: u64) -> Arc<Outcome> {
        Arc::new(Outcome {
            offset,
            time_ms,
            replayed: false,
            result: Ok(engine::Reply::Ticked),
            effects: Vec::new(),
            effects_before_reply: 0,
            idempotency: None,
        })
    }

    fn places(page: &Page<'_>) -> Vec<(u64, u32)> {
        page.notifications
            .iter()
            .map(|notification| (notification.place.offset, notification.place.index))
            .collect()
    }

    fn at(offset: u64, index: u32) -> Option<Place> {
        Some(Place { offset, index })
    }

    #[test]
    fn a_user_reads_their_own_after_a_place_and_hears_of_what_was_dropped() {
        let mut notifications = Notifications::new(3, 10);
        assert_eq!(
            notifications.record(
                &at_offset(1, 10),
                vec![told("ana", 0), told("bo", 1), told("ana", 2)]
            ),
            [UserName::from("ana"), UserName::from("bo")]
        );
        notifications.record(&at_offset(4, 20), vec![told("ana", 0)]);
        let page = notifications.after("ana", None);
        assert_eq!(places(&page), [(1, 0), (1, 2), (4, 0)]);
        assert!(!page.older_dropped);
        assert_eq!(
            places(&notifications.after("ana", at(1, 0))),
            [(1, 2), (4, 0)]
        );
        // A place between two kept ones, or past the newest.
        assert_eq!(
            places(&notifications.after("ana", at(1, 1))),
            [(1, 2), (4, 0)]
        );
        assert!(notifications
            .after("ana", at(9, 0))
            .notifications
            .is_empty());
        assert_eq!(places(&notifications.after("bo", None)), [(1, 1)]);
        assert!(notifications.after("cy", None).notifications.is_empty());
        // A fourth drops the oldest: a read from before it says so, one after it does not.
        notifications.record(&at_offset(6, 30), vec![told("ana", 0)]);
        let page = notifications.after("ana", None);
        assert_eq!(places(&page), [(1, 2), (4, 0), (6, 0)]);
        assert!(page.older_dropped);
        assert!(notifications.after("ana", at(0, 9)).older_dropped);
        // A client that read (1, 0) before it was dropped missed nothing.
        assert!(!notifications.after("ana", at(1, 0)).older_dropped);
        assert!(!notifications.after("ana", at(1, 2)).older_dropped);
    }

    /// A shard of at most `users_max` users told ana, then bo, then ana again (up to 5
    /// notifications each).
    fn ana_bo_ana(users_max: usize) -> Notifications {
        let mut notifications = Notifications::new(5, users_max);
        notifications.record(&at_offset(1, 1), vec![told("ana", 0)]);
        notifications.record(&at_offset(2, 2), vec![told("bo", 0)]);
        notifications.record(&at_offset(3, 3), vec![told("ana", 0)]);
        notifications
    }

    #[test]
    fn the_least_recently_told_user_is_forgotten_and_later_users_hear_so() {
        let mut notifications = ana_bo_ana(2);
        // cy makes three: bo, told least recently, is forgotten.
        notifications.record(&at_offset(4, 4), vec![told("cy", 0)]);
        assert_eq!(notifications.users(), 2);
        assert_eq!(places(&notifications.after("ana", None)), [(1, 0), (3, 0)]);
        assert!(!notifications.after("ana", None).older_dropped);
        let bo = notifications.after("bo", None);
        assert!(bo.notifications.is_empty() && bo.older_dropped);
        // What bo had was at (2, 0): a cursor past it loses nothing.
        assert!(!notifications.after("bo", at(2, 0)).older_dropped);
        // cy came after bo was forgotten and cannot tell whether (2, 0) was theirs.
        assert!(notifications.after("cy", None).older_dropped);
        assert!(!notifications.after("cy", at(3, 0)).older_dropped);
        // Smaller limits apply to what a snapshot kept.
        notifications.set_limits(1, 1);
        assert_eq!(notifications.users(), 1);
        assert_eq!(places(&notifications.after("cy", None)), [(4, 0)]);
    }

    /// The recency queue and the slots against the ordered map the recency was: the same
    /// user forgotten at every step, and the same encoding (users and the map of latest
    /// touches) at every step, also after a decode (with the bookings, as the read model
    /// gives them back). Some users buy: their bookings stay after their notifications are
    /// forgotten; the records of the others are swept, and never outnumber the rest by more
    /// than the slack.
    #[test]
    fn the_recency_queue_forgets_and_encodes_as_the_ordered_map_did() {
        use std::collections::{BTreeSet, HashMap};
        let users_max = 7;
        let mut notifications = Notifications::new(2, users_max);
        // The reference: the latest touch of each kept user, the users by it, and bookings.
        let (mut touched, mut recency) = (HashMap::new(), BTreeMap::new());
        let mut bookings: BTreeMap<String, Vec<BookingId>> = BTreeMap::new();
        let mut random = 0x2545_f491_4f6c_dd1d_u64;
        let mut sweeps = 0;
        for step in 1..=5_000u64 {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            // Skewed: a few users are told often (stale entries pile up), many rarely, and
            // many once or twice (their records pile up until a sweep).
            let user = match random % 3 {
                0 => random % 4,
                1 => random % 40,
                _ => random % 2_000,
            };
            let user = format!("user-{user}");
            if random.is_multiple_of(11) {
                notifications.add_booking(&UserName::from(user.as_str()), BookingId(step));
                bookings
                    .entry(user.clone())
                    .or_default()
                    .push(BookingId(step));
            }
            if let Some(previous) = touched.insert(user.clone(), step) {
                recency.remove(&previous);
            } else if recency.len() == users_max {
                let (_, forgotten) = recency.pop_first().expect("full");
                touched.remove(&forgotten);
            }
            recency.insert(step, user.clone());
            let records = notifications.records;
            notifications.record(&at_offset(step, step), vec![told(&user, 0)]);
            sweeps += usize::from(notifications.records < records);
            let encoded = serde_json::to_value(&notifications).expect("encodes");
            assert_eq!(
                encoded["recency"],
                serde_json::json!(recency),
                "step {step}"
            );
            let users: BTreeSet<&String> = touched.keys().collect();
            let kept: Vec<&String> = users.into_iter().collect();
            let names: Vec<String> = encoded["users"]
                .as_object()
                .expect("a map")
                .keys()
                .cloned()
                .collect();
            assert_eq!(names.iter().collect::<Vec<_>>(), kept, "step {step}");
            assert!(notifications.kept.recency.len() <= 2 * notifications.kept.told_users + 64 + 1);
            // The bare records never outnumber half of the others, plus the shard count.
            assert!(
                notifications.records
                    <= 2 * (notifications.buyers + notifications.kept.told_users) + 1_024
            );
            assert_eq!(notifications.buyers, bookings.len());
            if step % 1_000 == 0 {
                assert_eq!(
                    serde_json::to_value(notifications.bookings_encoded()).expect("encodes"),
                    serde_json::json!(bookings)
                );
                for (user, booked) in &bookings {
                    assert_eq!(notifications.bookings(user), booked.as_slice());
                }
                let config = bincode::config::standard();
                let bytes = bincode::serde::encode_to_vec(&notifications, config).expect("encodes");
                let booked =
                    bincode::serde::encode_to_vec(notifications.bookings_encoded(), config)
                        .expect("encodes");
                let (decoded, _): (Notifications, usize) =
                    bincode::serde::decode_from_slice(&bytes, config).expect("decodes");
                let (booked, _): (CowMap<Arc<str>, Vec<BookingId>>, usize) =
                    bincode::serde::decode_from_slice(&booked, config).expect("decodes");
                assert_eq!(decoded.kept.recency.len(), users_max);
                notifications = decoded.with_bookings(booked);
                assert_eq!(
                    bincode::serde::encode_to_vec(&notifications, config).expect("encodes"),
                    bytes
                );
            }
        }
        assert!(sweeps >= 5, "{sweeps} sweeps");
    }

    /// A freed slot is reused for the next user told, and the forgotten user's record (kept
    /// for a booking) sees its notifications gone; a slot whose every generation was given
    /// out is never used again.
    #[test]
    fn a_forgotten_user_s_slot_is_reused_and_a_worn_out_one_retired() {
        let mut notifications = Notifications::new(5, 1);
        notifications.add_booking(&UserName::from("ana"), BookingId(1));
        notifications.record(&at_offset(1, 1), vec![told("ana", 0)]);
        assert_eq!(notifications.kept.slots.len(), 1);
        notifications.record(&at_offset(2, 2), vec![told("bo", 0)]);
        // bo took ana's slot; ana's record stays, naming the slot's first generation.
        assert_eq!(notifications.kept.slots.len(), 1);
        assert_eq!(places(&notifications.after("bo", None)), [(2, 0)]);
        let ana = notifications.after("ana", None);
        assert!(ana.notifications.is_empty() && ana.older_dropped);
        assert_eq!(notifications.bookings("ana"), [BookingId(1)]);
        // The slot's last generation: forgotten, it is retired, and a new one is made.
        notifications
            .kept
            .slots
            .get_mut(0)
            .expect("one slot")
            .generation = NonZeroU32::MAX;
        notifications
            .users
            .get_or_insert_with(&UserName::from("bo"), || unreachable!())
            .notes = Some(NotesRef {
            slot: 0,
            generation: NonZeroU32::MAX,
        });
        notifications.record(&at_offset(3, 3), vec![told("cy", 0)]);
        assert_eq!(notifications.kept.slots.len(), 2);
        assert_eq!(notifications.kept.free, None);
        assert!(notifications.after("bo", None).notifications.is_empty());
        assert_eq!(places(&notifications.after("cy", None)), [(3, 0)]);
        notifications.record(&at_offset(4, 4), vec![told("ana", 0)]);
        assert_eq!(notifications.kept.slots.len(), 2, "cy's slot is reused");
        assert_eq!(places(&notifications.after("ana", None)), [(4, 0)]);
    }

    /// A snapshot whose recency is not one latest touch per kept user is refused with an
    /// error (the follower then loads an older snapshot or rebuilds from the log), not
    /// taken: taken, the next encoding panicked on its check of one entry per user.
    #[test]
    fn a_snapshot_whose_recency_does_not_match_its_users_is_refused() {
        let notifications = ana_bo_ana(10);
        let encoded = serde_json::to_value(&notifications).expect("encodes");
        assert_eq!(
            encoded["recency"],
            serde_json::json!({"2": "bo", "3": "ana"})
        );
        let decoded: Notifications = serde_json::from_value(encoded.clone()).expect("decodes");
        assert_eq!(serde_json::to_value(&decoded).expect("encodes"), encoded);
        for (recency, why) in [
            (
                serde_json::json!({"2": "bo", "1": "ana"}),
                "touch 1 is not a kept user's latest",
            ),
            (
                serde_json::json!({"2": "bo", "3": "cy"}),
                "touch 3 is not a kept user's latest",
            ),
            (
                serde_json::json!({"3": "ana"}),
                "1 latest touches for 2 users",
            ),
        ] {
            let mut damaged = encoded.clone();
            damaged["recency"] = recency;
            let error = serde_json::from_value::<Notifications>(damaged)
                .expect_err("a recency that does not match is refused");
            assert!(error.to_string().contains(why), "{error}");
        }
    }

    #[test]
    fn cursors_read_back_and_bad_ones_are_refused() {
        let places = vec![None, at(41, 2), at(0, 0)];
        let text = format_cursor(&places);
        assert_eq!(text, "n.41_2.0_0");
        assert_eq!(parse_cursor(&text, 3).unwrap(), places);
        for bad in [
            "", "n", "n.41_2", "x.1_1.n", "n.41.n", "n.41_.n", "n.+1_2.n", "n._2.n",
        ] {
            assert!(parse_cursor(bad, 3).is_err(), "{bad:?}");
        }
        assert!(parse_cursor("99999999999999999999_0", 1).is_err());
        assert!(parse_cursor("9999999999999999999_999999999", 1).is_ok());
        assert!(parse_cursor("1_9999999999", 1).is_err());
    }
}
