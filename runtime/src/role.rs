//! The replica's role as a sans-io state machine: inputs in, actions polled out (the shape
//! of quinn-proto's `Connection`). No I/O, no threads, no clock: the time is an input
//! (`tick(now_ms)`), so every rule is tested by transcripts (`runtime/tests/role.rs`).
//!
//! The publisher thread feeds it the outcomes it handles (`outcome_seen`, `fenced`) and
//! carries out `OpenWriter` and `StepDown`; the runtime's handle feeds it the operator's
//! promotions (`request_promotion`) and automatic fail-over's inputs (`outcomes_log_end`,
//! `tick`) and carries out `AppendPromote`. An action goes to whoever gave the input that
//! caused it (`Shared::role_input`), so no thread takes another's action; the decision
//! `new` makes when there is nothing to replay goes to the publisher (`Parts::assemble`).
//!
//! The rules, applied in log order so every replica agrees on them:
//! - At start a replica is `CatchingUp`: it publishes nothing until it has seen the outcome
//!   of the requests log's last record as of its start. Then the node the log last named
//!   (`Promote` records) is primary; while the log has named no one, the configured role
//!   decides. So a restarted old primary never fences the one the log has since named, and
//!   automatic promotion never fires on a replica that is still replaying.
//! - A `Promote` record naming this node makes a standby primary at that offset: it opens
//!   the outcomes writer (in Kafka this fences the old primary's producer) and publishes
//!   every outcome the outcomes log lacks.
//! - A `Promote` record naming another node makes a primary step down at that offset (it
//!   has published through that record's outcome).
//! - A fenced writer (another replica opened one) steps down, keeping its outcomes; only a
//!   later `Promote` record naming this node makes it primary again.
//! - Automatic fail-over (`auto_promote_after_ms`): the sign of life is the outcomes log
//!   growing. A standby that has seen new outcomes of its own (applied new requests) while
//!   the outcomes log has not grown for that long asks for a `Promote` record naming
//!   itself. An idle system needs no primary and never fails over.

use std::collections::VecDeque;

/// What a replica does with outcomes, as `GET /v1/admin/engine` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Publishes outcomes and writes ticks.
    Primary,
    /// Applies the log (a hot copy of the state) but publishes nothing and never ticks.
    Standby,
    /// Just started and replaying the log: neither standby nor primary until it has caught
    /// up with the log's end as of its start (the log then says which). Never configured.
    CatchingUp,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::CatchingUp => "catching_up",
        }
    }
}

/// What the role machine asks its driver to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open the outcomes writer (in Kafka this fences every older writer), read the
    /// outcomes log's last complete outcome and publish every kept outcome after it; then
    /// say `writer_opened`.
    OpenWriter,
    /// Drop the outcomes writer and publish nothing more; keep outcomes for a promotion.
    StepDown,
    /// Append a `Promote` record naming this node to the requests log; say
    /// `promote_append_failed` if it could not be appended.
    AppendPromote,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::OpenWriter => "open_writer",
            Action::StepDown => "step_down",
            Action::AppendPromote => "append_promote",
        }
    }
}

/// Why a promotion is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PromotionRefused {
    #[error("this replica is already primary")]
    Primary,
    #[error("a promotion of this replica is already under way")]
    UnderWay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Seeing outcomes until that of offset `until - 1`.
    CatchingUp {
        until: u64,
    },
    Standby,
    /// `OpenWriter` asked for, `writer_opened` not said yet.
    Opening,
    Primary,
}

/// How a replica starts.
#[derive(Clone, Debug)]
pub struct RoleStart {
    /// This replica's name, as `Promote` records name it.
    pub node: String,
    /// The role while the log names no primary: `Primary` or `Standby`.
    pub configured: Role,
    /// The node the loaded state's last `Promote` record names.
    pub named_primary: Option<String>,
    /// The next request offset to apply (the loaded state's applied offset + 1).
    pub next_offset: u64,
    /// The requests log's end when the replica started.
    pub log_end_offset: u64,
    /// Automatic fail-over after this long without the outcomes log growing; 0: off.
    pub auto_promote_after_ms: u64,
}

/// The role rules (see the module's documentation).
#[derive(Debug)]
pub struct RoleMachine {
    node: String,
    configured: Role,
    named_primary: Option<String>,
    phase: Phase,
    /// A `Promote` record naming this node was asked for and is not applied yet.
    promotion_pending: bool,
    /// The last request offset whose outcome was seen.
    seen_offset: Option<u64>,
    auto_promote_after_ms: u64,
    /// The outcomes log's end as last told.
    outcomes_end: Option<u64>,
    /// `seen_offset` when the outcomes log last grew (or the role last changed).
    seen_at_growth: Option<u64>,
    /// When outcomes were first seen unanswered by the outcomes log since it last grew.
    unanswered_since_ms: Option<u64>,
    actions: VecDeque<Action>,
}

impl RoleMachine {
    pub fn new(start: RoleStart) -> RoleMachine {
        assert!(!start.node.is_empty());
        assert!(
            start.configured != Role::CatchingUp,
            "the configured role is primary or standby"
        );
        let seen_offset = start.next_offset.checked_sub(1);
        let mut machine = RoleMachine {
            node: start.node,
            configured: start.configured,
            named_primary: start.named_primary,
            phase: Phase::CatchingUp {
                until: start.log_end_offset.max(start.next_offset),
            },
            promotion_pending: false,
            seen_offset,
            auto_promote_after_ms: start.auto_promote_after_ms,
            outcomes_end: None,
            seen_at_growth: seen_offset,
            unanswered_since_ms: None,
            actions: VecDeque::new(),
        };
        // Nothing to replay: caught up at once.
        machine.decide_if_caught_up();
        machine
    }

    // ---- queries ------------------------------------------------------------------------

    pub fn role(&self) -> Role {
        match self.phase {
            Phase::CatchingUp { .. } => Role::CatchingUp,
            // The writer is not open yet: nothing published, nothing ticked.
            Phase::Standby | Phase::Opening => Role::Standby,
            Phase::Primary => Role::Primary,
        }
    }

    /// A standby (promoting or not): it publishes nothing, so its snapshots need wait for
    /// no outcome to be published. A replica catching up or opening its writer is not one:
    /// it may be about to publish what it holds.
    pub fn publishes_nothing(&self) -> bool {
        self.phase == Phase::Standby
    }

    /// While catching up: the offset whose outcome ends it, plus one. The publisher cuts
    /// its batches there (outcomes before it are kept, after it published if primary).
    pub fn catching_up_until(&self) -> Option<u64> {
        match self.phase {
            Phase::CatchingUp { until } => Some(until),
            _ => None,
        }
    }

    pub fn promotion_pending(&self) -> bool {
        self.promotion_pending
    }

    /// The next action to carry out, in the order they were asked for.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    // ---- inputs -------------------------------------------------------------------------

    /// The outcomes through `offset` have been handled (published or kept), in order;
    /// `promoted` is the node the outcome of `offset` names when it is a `Promote` record's.
    /// Call it at least for every `Promote` record's outcome and for the outcome of
    /// `catching_up_until() - 1`.
    pub fn outcome_seen(&mut self, offset: u64, promoted: Option<&str>) {
        assert!(
            Some(offset) > self.seen_offset,
            "outcomes are seen in offset order: {offset} after {:?}",
            self.seen_offset
        );
        self.seen_offset = Some(offset);
        if let Some(node) = promoted {
            self.promote_applied(node);
        }
        self.decide_if_caught_up();
    }

    /// The outcomes writer was refused: another replica opened one.
    pub fn fenced(&mut self) {
        if matches!(self.phase, Phase::Primary | Phase::Opening) {
            self.become_standby();
            self.actions.push_back(Action::StepDown);
        }
    }

    /// The writer `OpenWriter` asked for is open.
    pub fn writer_opened(&mut self) {
        assert_eq!(self.phase, Phase::Opening, "no writer was asked for");
        self.phase = Phase::Primary;
    }

    /// The operator asks for this replica to become primary: a standby (or a replica still
    /// catching up) gets `AppendPromote`.
    pub fn request_promotion(&mut self) -> Result<(), PromotionRefused> {
        if matches!(self.phase, Phase::Primary | Phase::Opening) {
            return Err(PromotionRefused::Primary);
        }
        if self.promotion_pending {
            return Err(PromotionRefused::UnderWay);
        }
        self.promotion_pending = true;
        self.actions.push_back(Action::AppendPromote);
        Ok(())
    }

    /// The `Promote` record asked for could not be appended.
    pub fn promote_append_failed(&mut self) {
        self.promotion_pending = false;
    }

    /// The outcomes log's end as just read (automatic fail-over's sign of life).
    pub fn outcomes_log_end(&mut self, end_offset: u64) {
        if self.outcomes_end != Some(end_offset) {
            self.outcomes_end = Some(end_offset);
            self.seen_at_growth = self.seen_offset;
            self.unanswered_since_ms = None;
        }
    }

    /// The time passes (milliseconds on any clock that never goes back). A standby whose
    /// new outcomes have gone unanswered by the outcomes log for `auto_promote_after_ms`
    /// gets `AppendPromote`.
    pub fn tick(&mut self, now_ms: u64) {
        if self.auto_promote_after_ms == 0 {
            return;
        }
        if self.phase != Phase::Standby || self.promotion_pending {
            self.unanswered_since_ms = None;
            return;
        }
        if self.outcomes_end.is_none() || self.seen_offset <= self.seen_at_growth {
            return; // nothing new to answer: no sign of death either
        }
        let since = *self.unanswered_since_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(since) < self.auto_promote_after_ms {
            return;
        }
        self.unanswered_since_ms = None;
        self.promotion_pending = true;
        self.actions.push_back(Action::AppendPromote);
    }

    // ---- rules --------------------------------------------------------------------------

    fn promote_applied(&mut self, node: &str) {
        let mine = node == self.node;
        self.named_primary = Some(node.to_string());
        if mine {
            self.promotion_pending = false;
        }
        match (self.phase, mine) {
            (Phase::Standby, true) => self.open_writer(),
            (Phase::Primary | Phase::Opening, false) => {
                self.become_standby();
                self.actions.push_back(Action::StepDown);
            }
            // Already primary, already standby, or decided once caught up.
            _ => {}
        }
    }

    fn decide_if_caught_up(&mut self) {
        let Phase::CatchingUp { until } = self.phase else {
            return;
        };
        if self.seen_offset.map_or(0, |seen| seen + 1) < until {
            return;
        }
        let primary = match &self.named_primary {
            Some(node) => *node == self.node,
            None => self.configured == Role::Primary,
        };
        if primary {
            self.open_writer();
        } else {
            self.become_standby();
        }
    }

    fn open_writer(&mut self) {
        self.phase = Phase::Opening;
        self.actions.push_back(Action::OpenWriter);
    }

    /// From here on, only new outcomes count as unanswered: what was replayed or
    /// published before is no sign that the primary is gone.
    fn become_standby(&mut self) {
        self.phase = Phase::Standby;
        self.seen_at_growth = self.seen_offset;
        self.unanswered_since_ms = None;
    }
}
