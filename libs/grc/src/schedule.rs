//! When the continuous mode (`grc run`) syncs, decided without I/O: the
//! [`Scheduler`] (is a full sync due? is it time to look for changes?) and
//! the [`Changes`] seen on `scope.decisions` and `evidence.records` that no
//! completed sync covers yet (their offsets are held until one does).
//!
//! The rules:
//! - a full sync when none ever completed, or when the last completed one
//!   started `full_every` ago or more (after a failed one: again an
//!   `interval` later, not at once);
//! - otherwise, every `interval`: an incremental sync if anything changed
//!   since the last completed sync, or if nothing ever completed;
//! - a change is covered by a completed sync that read the database while
//!   the change's row was there (classify and evidence publish first and
//!   write their rows right after, so a row may lag its message); a change
//!   whose row is still missing after [`MISSES_BEFORE_GIVING_UP`] completed
//!   syncs is given up (the service that wrote the message writes no row to
//!   this database).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::SyncType;

/// How many completed syncs a change may find its row missing before it
/// is given up.
pub const MISSES_BEFORE_GIVING_UP: u32 = 3;

/// `interval` and `full_every` of the continuous mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub full_every: Duration,
}

/// What to do at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not yet time to look.
    Wait,
    /// Time to look, and nothing changed: call [`Scheduler::nothing_changed`].
    NothingChanged,
    /// Sync now; then call [`Scheduler::attempted`].
    Sync(SyncType),
}

/// Why a sync is due, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NeverSynced,
    FullDue,
    Changed,
}

/// The state of the schedule: when the last syncs completed and when to
/// look next. Times are wall-clock UTC (they are compared with `grc_syncs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduler {
    schedule: Schedule,
    /// When the newest completed full sync started.
    last_full: Option<DateTime<Utc>>,
    /// When the newest completed sync (of either type) started.
    last_completed: Option<DateTime<Utc>>,
    /// When to look for changes next; `None`: at once.
    next_check: Option<DateTime<Utc>>,
    /// After a failed full sync: not again before this.
    full_retry_at: Option<DateTime<Utc>>,
}

fn span(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Scheduler {
    /// The schedule, from what `grc_syncs` says was completed.
    pub fn new(schedule: Schedule, last_full: Option<DateTime<Utc>>, last_completed: Option<DateTime<Utc>>) -> Self {
        Self { schedule, last_full, last_completed, next_check: None, full_retry_at: None }
    }

    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// When the next full sync is due (`None`: now, none ever completed).
    pub fn next_full(&self) -> Option<DateTime<Utc>> {
        let due = self.last_full.map(|t| t + span(self.schedule.full_every));
        match (due, self.full_retry_at) {
            (Some(d), Some(r)) => Some(d.max(r)),
            (None, r) => r,
            (d, None) => d,
        }
    }

    fn full_due(&self, now: DateTime<Utc>) -> bool {
        self.next_full().is_none_or(|t| now >= t)
    }

    /// What to do at `now`, given whether anything changed that no
    /// completed sync covers. Pure: nothing moves until
    /// [`Self::nothing_changed`] or [`Self::attempted`].
    pub fn decide(&self, now: DateTime<Utc>, changed: bool) -> Decision {
        if self.full_due(now) {
            return Decision::Sync(SyncType::Full);
        }
        if self.next_check.is_some_and(|t| now < t) {
            return Decision::Wait;
        }
        if changed || self.last_completed.is_none() {
            Decision::Sync(SyncType::Incremental)
        } else {
            Decision::NothingChanged
        }
    }

    /// Why `decide` said to sync, for logs.
    pub fn reason(&self, now: DateTime<Utc>) -> Reason {
        match (self.last_completed, self.full_due(now)) {
            (None, _) => Reason::NeverSynced,
            (Some(_), true) => Reason::FullDue,
            (Some(_), false) => Reason::Changed,
        }
    }

    /// The look at `now` found nothing to sync.
    pub fn nothing_changed(&mut self, now: DateTime<Utc>) {
        self.next_check = Some(now + span(self.schedule.interval));
    }

    /// A sync of `sync_type` that started at `started_at` ended at `now`,
    /// `completed` (something went through) or not (failed: retried an
    /// interval later).
    pub fn attempted(&mut self, sync_type: SyncType, started_at: DateTime<Utc>, completed: bool, now: DateTime<Utc>) {
        self.next_check = Some(now + span(self.schedule.interval));
        if completed {
            self.last_completed = Some(self.last_completed.map_or(started_at, |t| t.max(started_at)));
            if sync_type == SyncType::Full {
                self.last_full = Some(self.last_full.map_or(started_at, |t| t.max(started_at)));
                self.full_retry_at = None;
            }
        } else if sync_type == SyncType::Full {
            self.full_retry_at = Some(now + span(self.schedule.interval));
        }
    }

    /// When the newest completed sync started.
    pub fn last_completed(&self) -> Option<DateTime<Utc>> {
        self.last_completed
    }
}

/// What a message said changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A scope decision (`scope_decisions.id`).
    Decision(Uuid),
    /// An evidence record (`evidence.id`) generated at that time.
    Evidence(Uuid, DateTime<Utc>),
    /// A message that could not be read: any completed sync covers it.
    Unknown,
}

/// One consumed message not yet covered by a completed sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub subject: Subject,
    /// Completed syncs that found its row missing.
    misses: u32,
}

impl Change {
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64, subject: Subject) -> Self {
        Self { topic: topic.into(), partition, offset, subject, misses: 0 }
    }
}

/// What a completed sync covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Changes covered (their offsets may be committed).
    pub covered: usize,
    /// Changes whose row was not in the database yet: the next look syncs again.
    pub waiting: usize,
    /// Changes given up: their row was missing [`MISSES_BEFORE_GIVING_UP`] times.
    pub given_up: Vec<Change>,
}

/// The changes seen and not yet covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pending: Vec<Change>,
}

impl Changes {
    pub fn note(&mut self, change: Change) {
        self.pending.push(change);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// The decision and evidence ids to look up before a sync reads the database.
    pub fn ids(&self) -> (Vec<Uuid>, Vec<Uuid>) {
        let mut decisions = Vec::new();
        let mut evidence = Vec::new();
        for c in &self.pending {
            match c.subject {
                Subject::Decision(id) => decisions.push(id),
                Subject::Evidence(id, _) => evidence.push(id),
                Subject::Unknown => {}
            }
        }
        decisions.sort_unstable();
        decisions.dedup();
        evidence.sort_unstable();
        evidence.dedup();
        (decisions, evidence)
    }

    /// The evidence an incremental sync must offer: generated since the
    /// last completed sync started, and since the oldest pending evidence
    /// record (its row may have been written after that sync started).
    pub fn evidence_since(&self, last_completed: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let oldest = self
            .pending
            .iter()
            .filter_map(|c| match c.subject {
                Subject::Evidence(_, at) => Some(at),
                _ => None,
            })
            .min();
        match (last_completed, oldest) {
            (Some(l), Some(o)) => Some(l.min(o)),
            (l, _) => l,
        }
    }

    /// For each partition, the lowest offset not covered: offsets are
    /// never committed past it.
    pub fn held_offsets(&self) -> Vec<(String, i32, i64)> {
        let mut lowest: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for c in &self.pending {
            let e = lowest.entry((c.topic.as_str(), c.partition)).or_insert(c.offset);
            *e = (*e).min(c.offset);
        }
        lowest.into_iter().map(|((t, p), o)| (t.to_owned(), p, o)).collect()
    }

    /// A sync completed that read the database when the rows `present`
    /// (of the ids [`Self::ids`] gave before it) were there: what it covered.
    pub fn completed(&mut self, present: &HashSet<Uuid>) -> Coverage {
        let mut coverage = Coverage::default();
        let mut kept = Vec::new();
        for mut c in std::mem::take(&mut self.pending) {
            let there = match c.subject {
                Subject::Decision(id) | Subject::Evidence(id, _) => present.contains(&id),
                Subject::Unknown => true,
            };
            if there {
                coverage.covered += 1;
                continue;
            }
            c.misses += 1;
            if c.misses >= MISSES_BEFORE_GIVING_UP {
                coverage.given_up.push(c);
            } else {
                coverage.waiting += 1;
                kept.push(c);
            }
        }
        self.pending = kept;
        coverage
    }

    /// The consumer group took these partitions away: whoever gets them
    /// reads their uncommitted messages again.
    pub fn forget(&mut self, partitions: &[(String, i32)]) {
        self.pending.retain(|c| !partitions.iter().any(|(t, p)| *t == c.topic && *p == c.partition));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_000_000 + secs)
    }

    const MIN: u64 = 60;

    fn schedule() -> Schedule {
        Schedule { interval: Duration::from_secs(15 * MIN), full_every: Duration::from_secs(24 * 60 * MIN) }
    }

    #[test]
    fn never_synced_starts_with_a_full_sync() {
        let s = Scheduler::new(schedule(), None, None);
        assert_eq!(s.decide(at(0), false), Decision::Sync(SyncType::Full));
        assert_eq!(s.reason(at(0)), Reason::NeverSynced);
    }

    #[test]
    fn a_recent_full_sync_means_none_at_start_and_one_when_due() {
        // The last full sync started 23 h ago, an incremental one 10 min ago.
        let s = Scheduler::new(schedule(), Some(at(-23 * 3600)), Some(at(-600)));
        assert_eq!(s.decide(at(0), false), Decision::NothingChanged);
        assert_eq!(s.decide(at(0), true), Decision::Sync(SyncType::Incremental));
        assert_eq!(s.next_full(), Some(at(3600)));
        assert_eq!(s.decide(at(3600), false), Decision::Sync(SyncType::Full));
        assert_eq!(s.reason(at(3600)), Reason::FullDue);
        // Older than full_every at start: full at once.
        let s = Scheduler::new(schedule(), Some(at(-25 * 3600)), Some(at(-60)));
        assert_eq!(s.decide(at(0), false), Decision::Sync(SyncType::Full));
    }

    #[test]
    fn incremental_syncs_only_on_interval_ticks_and_only_after_a_change() {
        let mut s = Scheduler::new(schedule(), None, None);
        s.attempted(SyncType::Full, at(0), true, at(5));
        // Changes arriving right after wait for the next tick.
        assert_eq!(s.decide(at(10), true), Decision::Wait);
        assert_eq!(s.decide(at(5 + 15 * 60 - 1), true), Decision::Wait);
        assert_eq!(s.decide(at(5 + 15 * 60), true), Decision::Sync(SyncType::Incremental));
        assert_eq!(s.reason(at(5 + 15 * 60)), Reason::Changed);
        s.attempted(SyncType::Incremental, at(905), true, at(906));
        assert_eq!(s.last_completed(), Some(at(905)));
        // Nothing changed on the next tick: no sync, and the tick after is an interval later.
        assert_eq!(s.decide(at(906 + 900), false), Decision::NothingChanged);
        s.nothing_changed(at(906 + 900));
        assert_eq!(s.decide(at(906 + 901), true), Decision::Wait);
        assert_eq!(s.decide(at(906 + 1800), true), Decision::Sync(SyncType::Incremental));
    }

    #[test]
    fn an_incremental_sync_does_not_postpone_the_full_one() {
        let mut s = Scheduler::new(schedule(), None, None);
        s.attempted(SyncType::Full, at(0), true, at(1));
        for tick in 1..96 {
            let now = at(tick * 900 + 1);
            assert_eq!(s.decide(now, true), Decision::Sync(SyncType::Incremental), "tick {tick}");
            s.attempted(SyncType::Incremental, now, true, now);
        }
        assert_eq!(s.decide(at(86_400), true), Decision::Sync(SyncType::Full));
    }

    #[test]
    fn a_failed_sync_is_retried_an_interval_later() {
        let mut s = Scheduler::new(schedule(), None, None);
        s.attempted(SyncType::Full, at(0), false, at(2));
        assert_eq!(s.last_completed(), None);
        assert_eq!(s.decide(at(3), false), Decision::Wait, "not at once after a failure");
        assert_eq!(s.decide(at(2 + 900), false), Decision::Sync(SyncType::Full));
        s.attempted(SyncType::Full, at(902), true, at(903));
        // A failed incremental one leaves the change pending; the next tick tries again.
        assert_eq!(s.decide(at(903 + 900), true), Decision::Sync(SyncType::Incremental));
        s.attempted(SyncType::Incremental, at(1803), false, at(1804));
        assert_eq!(s.last_completed(), Some(at(902)));
        assert_eq!(s.decide(at(1805), true), Decision::Wait);
        assert_eq!(s.decide(at(1804 + 900), true), Decision::Sync(SyncType::Incremental));
    }

    #[test]
    fn changes_hold_their_offsets_until_a_sync_covers_their_rows() {
        let (d1, d2, e1) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let mut c = Changes::default();
        c.note(Change::new("scope.decisions", 0, 10, Subject::Decision(d1)));
        c.note(Change::new("scope.decisions", 0, 11, Subject::Decision(d2)));
        c.note(Change::new("scope.decisions", 1, 4, Subject::Unknown));
        c.note(Change::new("evidence.records", 2, 7, Subject::Evidence(e1, at(-30))));
        assert_eq!(
            c.held_offsets(),
            [
                ("evidence.records".to_owned(), 2, 7),
                ("scope.decisions".to_owned(), 0, 10),
                ("scope.decisions".to_owned(), 1, 4)
            ]
        );
        assert_eq!(c.ids(), (vec![d1, d2], vec![e1]));
        assert_eq!(c.evidence_since(Some(at(0))), Some(at(-30)), "the pending record's time when older");
        assert_eq!(c.evidence_since(Some(at(-60))), Some(at(-60)));
        assert_eq!(c.evidence_since(None), None, "never synced: all of it");

        // d1's row was written after the sync read the database: d1 still holds partition 0.
        let cov = c.completed(&HashSet::from([d2, e1]));
        assert_eq!((cov.covered, cov.waiting, cov.given_up.len()), (3, 1, 0));
        assert_eq!(c.held_offsets(), [("scope.decisions".to_owned(), 0, 10)]);
        assert!(!c.is_empty());
        let cov = c.completed(&HashSet::from([d1]));
        assert_eq!(cov.covered, 1);
        assert!(c.is_empty() && c.held_offsets().is_empty());
    }

    #[test]
    fn a_row_that_never_comes_is_given_up_and_releases_its_offset() {
        let mut c = Changes::default();
        c.note(Change::new("scope.decisions", 0, 3, Subject::Decision(Uuid::from_u128(9))));
        for _ in 1..MISSES_BEFORE_GIVING_UP {
            let cov = c.completed(&HashSet::new());
            assert_eq!((cov.covered, cov.waiting), (0, 1));
        }
        let cov = c.completed(&HashSet::new());
        assert_eq!(cov.given_up.len(), 1);
        assert!(c.is_empty());
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut c = Changes::default();
        c.note(Change::new("scope.decisions", 0, 3, Subject::Unknown));
        c.note(Change::new("scope.decisions", 1, 5, Subject::Unknown));
        c.forget(&[("scope.decisions".to_owned(), 0)]);
        assert_eq!(c.held_offsets(), [("scope.decisions".to_owned(), 1, 5)]);
        assert_eq!(c.len(), 1);
    }

    /// Model check: over random sequences of messages, rows and ticks, a
    /// change is never released (its offset passed) before a completed sync
    /// saw its row (or gave it up), and a full sync is never further apart
    /// than `full_every` plus one interval while syncs complete.
    #[test]
    fn random_runs_never_release_an_uncovered_change_nor_skip_a_full_sync() {
        let mut seed: u64 = 0x5eed;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let sched = Schedule { interval: Duration::from_secs(60), full_every: Duration::from_secs(600) };
        for _run in 0..50 {
            let mut s = Scheduler::new(sched, None, None);
            let mut c = Changes::default();
            let mut rows: HashSet<Uuid> = HashSet::new();
            let mut offset = 0i64;
            let mut fulls = vec![];
            let mut now = at(0);
            for step in 0..400u64 {
                now += chrono::Duration::seconds(next(20) as i64 + 1);
                if next(3) == 0 {
                    let id = Uuid::from_u128(u128::from(step) + 1);
                    c.note(Change::new("scope.decisions", 0, offset, Subject::Decision(id)));
                    offset += 1;
                    if next(4) != 0 {
                        rows.insert(id);
                    }
                }
                match s.decide(now, !c.is_empty()) {
                    Decision::Wait => {}
                    Decision::NothingChanged => s.nothing_changed(now),
                    Decision::Sync(t) => {
                        let before: Vec<Change> = c.pending.clone();
                        let cov = c.completed(&rows);
                        for b in before {
                            let released = !c.pending.contains(&Change { misses: b.misses + 1, ..b.clone() });
                            let seen = match b.subject {
                                Subject::Decision(id) => rows.contains(&id),
                                _ => true,
                            };
                            assert!(!released || seen || cov.given_up.iter().any(|g| g.offset == b.offset));
                        }
                        s.attempted(t, now, true, now);
                        if t == SyncType::Full {
                            fulls.push(now);
                        }
                    }
                }
            }
            for w in fulls.windows(2) {
                assert!(w[1] - w[0] <= chrono::Duration::seconds(600 + 60 + 20), "{w:?}");
            }
        }
    }
}
