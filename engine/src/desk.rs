//! Service desks: sell time slots under a service level. Slot `k` of a desk covers
//! `[k * slot_ms, (k + 1) * slot_ms)` for each of its agents. A ticket of a level gets
//! the earliest slot that starts at or after now and ends by now + the level's
//! deadline, or is refused at once.
//!
//! Per desk, maximal runs of full slots are kept as intervals, so "the earliest slot
//! with a free agent at or after k" is one ordered-map lookup, never a scan of slots.
//!
//! A user may have at most `desk_tickets_per_user_max` open tickets per desk: live ones
//! (not canceled, not an expired validation) whose slot has not ended yet.

use crate::command::DeskSpec;
use crate::engine::{Engine, TimerKind};
use crate::ids::{DeskId, DeskTicketId, ShardPlace};
use crate::outcome::{ConflictReason, DeskTicketView, Effect, Limit, NotFound, Rejection, Reply};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desks {
    pub(crate) desks: Vec<Desk>,
    /// Ordered copy-on-write chunks: tickets are kept once confirmed, so the table grows
    /// with traffic, and a snapshot's copy of it is a pointer per chunk.
    pub(crate) tickets: crate::chunked::ChunkedMap<DeskTicketId, DeskTicket, 256>,
    pub(crate) next_ticket: u64,
    /// Per (desk, user), the user's live tickets there that were open when last looked
    /// at: every open ticket is here; one whose slot has ended since is dropped at the
    /// user's next ticket, so a set holds at most the per-user cap. Empty sets are removed.
    pub(crate) open_by_user: BTreeMap<(DeskId, String), BTreeSet<DeskTicketId>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Desk {
    pub(crate) tenant: String,
    pub(crate) spec: DeskSpec,
    /// Busy agents per slot (only slots with at least one).
    pub(crate) busy: BTreeMap<u64, BTreeSet<u32>>,
    /// Maximal runs of full slots: start → end (exclusive).
    pub(crate) full_runs: BTreeMap<u64, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeskTicket {
    pub(crate) desk: DeskId,
    pub(crate) user: String,
    pub(crate) level: u16,
    pub(crate) agent: u32,
    pub(crate) slot: u64,
    pub(crate) resolve_by_ms: u64,
    pub(crate) hold_expires_at_ms: Option<u64>,
}

impl Desks {
    /// The desk a ticket of this shard (`place`) names.
    pub(crate) fn desk_of(&self, ticket: &DeskTicket, place: ShardPlace) -> &Desk {
        let index = place
            .desk_index(ticket.desk)
            .expect("a desk ticket names a desk of its shard");
        &self.desks[index]
    }

    /// Whether a live ticket's slot has not ended at `now_ms`.
    pub(crate) fn is_open(&self, ticket: &DeskTicket, now_ms: u64, place: ShardPlace) -> bool {
        let slot_ms = self.desk_of(ticket, place).spec.slot_ms;
        (ticket.slot + 1) * slot_ms > now_ms
    }

    /// The user's open tickets at the desk.
    fn open_tickets(&self, desk: DeskId, user: &str, now_ms: u64, place: ShardPlace) -> usize {
        self.open_by_user
            .get(&(desk, user.to_string()))
            .map_or(0, |tickets| {
                tickets
                    .iter()
                    .filter(|ticket| self.is_open(&self.tickets[ticket], now_ms, place))
                    .count()
            })
    }

    /// Files a new ticket under its user, dropping those whose slot has ended.
    fn file_open(&mut self, ticket_id: DeskTicketId, now_ms: u64, place: ShardPlace) {
        let ticket = &self.tickets[&ticket_id];
        let key = (ticket.desk, ticket.user.clone());
        let mut open = self.open_by_user.remove(&key).unwrap_or_default();
        open.retain(|ticket| self.is_open(&self.tickets[ticket], now_ms, place));
        assert!(open.insert(ticket_id), "a new ticket is filed once");
        self.open_by_user.insert(key, open);
    }

    fn unfile_open(&mut self, ticket_id: DeskTicketId, ticket: &DeskTicket) {
        let key = (ticket.desk, ticket.user.clone());
        if let Some(open) = self.open_by_user.get_mut(&key) {
            open.remove(&ticket_id);
            if open.is_empty() {
                self.open_by_user.remove(&key);
            }
        }
    }
}

impl Desk {
    /// The earliest slot at or after `slot` with a free agent.
    pub(crate) fn earliest_open(&self, slot: u64) -> u64 {
        match self.full_runs.range(..=slot).next_back() {
            Some((_, &end)) if end > slot => end,
            _ => slot,
        }
    }

    fn occupy(&mut self, slot: u64) -> u32 {
        let agents = self.spec.agents;
        let busy = self.busy.entry(slot).or_default();
        assert!((busy.len() as u32) < agents, "the slot has a free agent");
        // The lowest free agent: the first place where the sorted busy agents skip one.
        let agent = busy
            .iter()
            .zip(0..)
            .find(|(busy_agent, index)| **busy_agent != *index)
            .map_or(busy.len() as u32, |(_, index)| index);
        busy.insert(agent);
        if busy.len() as u32 == agents {
            let mut start = slot;
            let mut end = slot + 1;
            if let Some((&before, &before_end)) = self.full_runs.range(..slot).next_back() {
                if before_end == slot {
                    start = before;
                }
            }
            if let Some(after_end) = self.full_runs.remove(&(slot + 1)) {
                end = after_end;
            }
            self.full_runs.insert(start, end);
        }
        agent
    }

    fn vacate(&mut self, slot: u64, agent: u32) {
        let busy = self.busy.get_mut(&slot).expect("the slot is busy");
        let was_full = busy.len() as u32 == self.spec.agents;
        assert!(busy.remove(&agent), "the agent was busy in that slot");
        if busy.is_empty() {
            self.busy.remove(&slot);
        }
        if was_full {
            let (&start, &end) = self
                .full_runs
                .range(..=slot)
                .next_back()
                .expect("a full slot is in a run");
            assert!(start <= slot && slot < end);
            self.full_runs.remove(&start);
            if start < slot {
                self.full_runs.insert(start, slot);
            }
            if slot + 1 < end {
                self.full_runs.insert(slot + 1, end);
            }
        }
    }

    /// Forgets slots that ended before `slot`; tickets keep their own copy.
    fn prune_before(&mut self, slot: u64) {
        while self
            .busy
            .first_key_value()
            .is_some_and(|(first, _)| *first < slot)
        {
            self.busy.pop_first();
        }
        while let Some((&start, &end)) = self.full_runs.first_key_value() {
            if start >= slot {
                break;
            }
            self.full_runs.pop_first();
            if end > slot {
                self.full_runs.insert(slot, end);
                break;
            }
        }
    }
}

impl Engine {
    pub(crate) fn create_desk<U>(
        &mut self,
        tenant: &str,
        spec: &DeskSpec,
    ) -> Result<Reply<U>, Rejection> {
        let invalid = |reason: &str| {
            Err(Rejection::Invalid {
                reason: reason.to_string(),
            })
        };
        if tenant.is_empty()
            || spec.name.trim().is_empty()
            || spec.name.len() > self.config.text_bytes_max
        {
            return invalid("a desk needs a name");
        }
        if spec.agents == 0 || spec.agents > 10_000 {
            return invalid("a desk has from 1 to 10000 agents");
        }
        if spec.slot_ms < 1_000
            || spec.horizon_ms < spec.slot_ms
            || spec.horizon_ms / spec.slot_ms > self.config.desk_slots_max
        {
            return invalid("slot length must be at least 1 s and the horizon at least one slot and at most the slot limit");
        }
        // Fix: horizons and deadlines are added to the clock; unbounded ones overflowed.
        if spec.horizon_ms > crate::config::DURATION_MS_MAX
            || spec
                .levels
                .iter()
                .any(|level| level.deadline_ms > crate::config::DURATION_MS_MAX)
        {
            return invalid("a desk's horizon and deadlines must be at most DURATION_MS_MAX");
        }
        if spec.levels.is_empty() || spec.levels.len() > 16 {
            return invalid("a desk has from 1 to 16 service levels");
        }
        let names: BTreeSet<&str> = spec
            .levels
            .iter()
            .map(|level| level.name.as_str())
            .collect();
        if names.len() != spec.levels.len()
            || spec
                .levels
                .iter()
                .any(|level| level.name.is_empty() || level.deadline_ms < spec.slot_ms)
        {
            return invalid(
                "service levels need distinct names and deadlines of at least one slot",
            );
        }
        if !(self.config.hold_ttl_min_ms..=self.config.hold_ttl_max_ms).contains(&spec.hold_ttl_ms)
        {
            return invalid("the desk's hold TTL is out of range");
        }
        let desk_count = self.state.desks.desks.len();
        if desk_count >= self.config.desks_max as usize {
            return Err(Rejection::LimitExceeded {
                limit: Limit::Desks,
                max: self.config.desks_max,
            });
        }
        let desk = self.desk_id_at(desk_count);
        self.state.desks.desks.push(Desk {
            tenant: tenant.to_string(),
            spec: spec.clone(),
            busy: BTreeMap::new(),
            full_runs: BTreeMap::new(),
        });
        Ok(Reply::DeskCreated {
            desk,
            tenant: tenant.to_string(),
            spec: Box::new(spec.clone()),
        })
    }

    pub(crate) fn create_desk_ticket<U>(
        &mut self,
        user: &str,
        desk_id: DeskId,
        level: &str,
        hold_only: bool,
    ) -> Result<Reply<U>, Rejection> {
        let now_ms = self.state.now_ms;
        let place = self.config.shard;
        let desk_index = self.desk_index(desk_id).ok_or(Rejection::NotFound {
            what: NotFound::Desk,
        })?;
        let desk = &self.state.desks.desks[desk_index];
        let level_index = desk
            .spec
            .levels
            .iter()
            .position(|candidate| candidate.name == level)
            .ok_or(Rejection::NotFound {
                what: NotFound::Level,
            })? as u16;
        let max = self.config.desk_tickets_per_user_max;
        if self.state.desks.open_tickets(desk_id, user, now_ms, place) >= max as usize {
            return Err(Rejection::LimitExceeded {
                limit: Limit::DeskTicketsPerUser,
                max,
            });
        }
        let desk = &mut self.state.desks.desks[desk_index];
        let slot_ms = desk.spec.slot_ms;
        let first_slot = now_ms.div_ceil(slot_ms);
        desk.prune_before(first_slot);
        let resolve_by_ms = now_ms + desk.spec.levels[level_index as usize].deadline_ms;
        let last_start_ms = now_ms + desk.spec.horizon_ms;
        // The earliest free slot is the only candidate: if it starts beyond the horizon
        // or ends after the deadline, so does every later one.
        let slot = desk.earliest_open(first_slot);
        let start_ms = slot * slot_ms;
        if start_ms > last_start_ms || start_ms + slot_ms > resolve_by_ms {
            return Err(Rejection::SlaUnavailable {
                earliest_start_ms: Some(start_ms),
            });
        }
        debug_assert!(start_ms >= now_ms && start_ms + slot_ms <= resolve_by_ms);
        let agent = desk.occupy(slot);
        let ticket_id = DeskTicketId(self.sequence_id(self.state.desks.next_ticket + 1));
        self.state.desks.next_ticket += 1;
        let hold_expires_at_ms =
            hold_only.then(|| now_ms + self.state.desks.desks[desk_index].spec.hold_ttl_ms);
        if let Some(expires) = hold_expires_at_ms {
            self.state
                .timers
                .insert((expires, TimerKind::DeskHoldExpiry, ticket_id.0));
        }
        let ticket = DeskTicket {
            desk: desk_id,
            user: user.to_string(),
            level: level_index,
            agent,
            slot,
            resolve_by_ms,
            hold_expires_at_ms,
        };
        self.state.desks.tickets.insert(ticket_id, ticket);
        self.state.desks.file_open(ticket_id, now_ms, place);
        debug_assert!(self.state.desks.open_tickets(desk_id, user, now_ms, place) <= max as usize);
        Ok(Reply::DeskTicketCreated(self.desk_ticket_view(ticket_id)))
    }

    pub(crate) fn desk_ticket_view(&self, ticket_id: DeskTicketId) -> DeskTicketView {
        let ticket = &self.state.desks.tickets[&ticket_id];
        let slot_ms = self
            .state
            .desks
            .desk_of(ticket, self.config.shard)
            .spec
            .slot_ms;
        DeskTicketView {
            desk: ticket.desk,
            ticket: ticket_id,
            user: ticket.user.as_str().into(),
            level: ticket.level,
            agent: ticket.agent,
            slot_start_ms: ticket.slot * slot_ms,
            slot_end_ms: (ticket.slot + 1) * slot_ms,
            resolve_by_ms: ticket.resolve_by_ms,
            hold_expires_at_ms: ticket.hold_expires_at_ms,
        }
    }

    fn owned_desk_ticket(
        &self,
        user: &str,
        desk: DeskId,
        ticket_id: DeskTicketId,
    ) -> Result<&DeskTicket, Rejection> {
        self.state
            .desks
            .tickets
            .get(&ticket_id)
            .filter(|ticket| ticket.user == user && ticket.desk == desk)
            .ok_or(Rejection::NotFound {
                what: NotFound::DeskTicket,
            })
    }

    pub(crate) fn confirm_desk_ticket<U>(
        &mut self,
        user: &str,
        desk: DeskId,
        ticket_id: DeskTicketId,
    ) -> Result<Reply<U>, Rejection> {
        let ticket = self.owned_desk_ticket(user, desk, ticket_id)?;
        let Some(expires) = ticket.hold_expires_at_ms else {
            return Err(Rejection::Conflict {
                reason: ConflictReason::DeskTicketAllocated,
            });
        };
        assert!(
            self.state.timers.remove(
                &(expires, TimerKind::DeskHoldExpiry, ticket_id.0),
                |due, id| crate::engine::hold_timer_live(&self.state.holds, due, id)
            ),
            "a held desk ticket has a timer"
        );
        self.state
            .desks
            .tickets
            .get_mut(&ticket_id)
            .expect("checked")
            .hold_expires_at_ms = None;
        Ok(Reply::DeskTicketConfirmed(self.desk_ticket_view(ticket_id)))
    }

    fn remove_desk_ticket(&mut self, ticket_id: DeskTicketId) -> DeskTicket {
        let ticket = self
            .state
            .desks
            .tickets
            .remove(&ticket_id)
            .expect("the ticket exists");
        self.state.desks.unfile_open(ticket_id, &ticket);
        let desk_index = self.known_desk_index(ticket.desk);
        let desk = &mut self.state.desks.desks[desk_index];
        // Slots already in the past were pruned; nothing to return for them.
        if desk
            .busy
            .get(&ticket.slot)
            .is_some_and(|busy| busy.contains(&ticket.agent))
        {
            desk.vacate(ticket.slot, ticket.agent);
        }
        ticket
    }

    pub(crate) fn cancel_desk_ticket<U>(
        &mut self,
        user: &str,
        desk: DeskId,
        ticket_id: DeskTicketId,
    ) -> Result<Reply<U>, Rejection> {
        let ticket = self.owned_desk_ticket(user, desk, ticket_id)?;
        if let Some(expires) = ticket.hold_expires_at_ms {
            self.state.timers.remove(
                &(expires, TimerKind::DeskHoldExpiry, ticket_id.0),
                |due, id| crate::engine::hold_timer_live(&self.state.holds, due, id),
            );
        }
        self.remove_desk_ticket(ticket_id);
        Ok(Reply::DeskTicketCanceled {
            desk,
            ticket: ticket_id,
            user: crate::UserName::from(user),
        })
    }

    pub(crate) fn expire_desk_hold(&mut self, ticket_id: DeskTicketId) {
        let ticket = self.remove_desk_ticket(ticket_id);
        self.effects.push(Effect::DeskHoldExpired {
            desk: ticket.desk,
            ticket: ticket_id,
            user: ticket.user.into(),
        });
    }

    /// Busy agents in the slot of `desk` that starts at `slot_start_ms`, for tests and
    /// tools. Exact for slots that start at or after now; slots in the past may have
    /// been forgotten (0). `None` if the desk does not exist or the time is not a slot
    /// start.
    pub fn desk_busy_agents(&self, desk: DeskId, slot_start_ms: u64) -> Option<u32> {
        let desk = &self.state.desks.desks[self.desk_index(desk)?];
        let slot_ms = desk.spec.slot_ms;
        if !slot_start_ms.is_multiple_of(slot_ms) {
            return None;
        }
        Some(
            desk.busy
                .get(&(slot_start_ms / slot_ms))
                .map_or(0, |busy| busy.len() as u32),
        )
    }

    /// The tenant owning a desk, for admin reads.
    pub fn desk_tenant(&self, desk: DeskId) -> Option<&str> {
        self.desk_index(desk)
            .map(|index| self.state.desks.desks[index].tenant.as_str())
    }
}
