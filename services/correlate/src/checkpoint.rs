//! What correlate keeps per input partition of the flow topic, and the
//! checkpoint that lets a restarted instance (or the partition's next owner)
//! repeat exactly what the first run did.
//!
//! The committed offset alone does not say where a run stood: the records
//! after it were processed too, some into windows that closed (and were
//! written) before the crash, some into windows still open, some late, some
//! second copies of batches counted before the offset. So, in the same
//! database transaction as the `data_flows` rows of each batch, correlate
//! writes per partition a [`Checkpoint`]:
//!
//! - `resume`: the offset the runner stores for this batch (after the last
//!   message, but not past an open window's or a held record's) — records
//!   before it are done;
//! - `processed`: the offset after the last message processed;
//! - the partition's highest event time (its watermark) after them;
//! - the newest source position counted per source partition *as of
//!   `resume`* (so a second copy of a batch is skipped whether its original
//!   lies before or after `resume`);
//! - the records held back for their inventory.
//!
//! Reading the partition again, from the committed offset or later:
//! records before `resume` are skipped; a record before `processed` is
//! counted again only if its window is still open at the restored watermark
//! (it was in that open window the first time; a closed window was written,
//! and a record late the first time is late against that watermark too),
//! and a record that was held back is held again until the replay reaches
//! `processed`; from `processed` on, processing is as usual.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use psg_domain::time::Micros;
use serde::{Deserialize, Serialize};

/// A position in a source topic: (offset, line) of a source message.
pub type SourcePos = (i64, i32);
/// (source topic, source partition).
pub type SourceKey = (Arc<str>, i32);

/// What correlate knows of one input partition.
#[derive(Debug, Default)]
pub struct Partition {
    /// Offset after the last message processed (0: none yet).
    pub next: i64,
    /// Messages before this offset were done before a restart.
    pub resume: i64,
    /// Replaying what the checkpoint says was processed, up to `processed`.
    pub replay: Option<Replay>,
    /// Newest source position counted, per source partition.
    counted: HashMap<SourceKey, SourcePos>,
    /// Changes to `counted`, oldest first: (input offset, key, value before),
    /// so `counted` as of an earlier offset can be rebuilt.
    undo: VecDeque<(i64, SourceKey, Option<SourcePos>)>,
    /// Something changed since the last checkpoint.
    pub dirty: bool,
    /// Checkpoints are written (a database is configured): keep `undo`.
    checkpointing: bool,
    /// Wall clock of the last message, and the partition's highest event
    /// time then (idle partitions advance from it).
    pub last_input: Option<(std::time::Instant, Micros)>,
}

/// Replaying after a restart: what the first run had done up to `processed`.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    pub processed: i64,
    /// (input offset, index in its batch) of the records held back then.
    pub held: HashSet<(i64, u32)>,
}

/// The per-partition state written with the rows (JSON in `state`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub resume: i64,
    pub processed: i64,
    /// The partition's highest event time (µs), if any record was windowed.
    pub max_event: Option<Micros>,
    /// (source topic, source partition, offset, line) counted as of `resume`.
    pub counted: Vec<(String, i32, i64, i32)>,
    /// (input offset, index in its batch) of the records held back.
    pub held: Vec<(i64, u32)>,
}

/// The version of the JSON shape in [`Checkpoint::to_json`].
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Stored {
    v: u32,
    max_event: Option<Micros>,
    counted: Vec<(String, i32, i64, i32)>,
    held: Vec<(i64, u32)>,
}

/// A stored checkpoint this build cannot resume from.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("unreadable checkpoint: {0}")]
    Unreadable(#[source] serde_json::Error),
    #[error("checkpoint version {found} (this build reads {VERSION})")]
    Version { found: u32 },
}

impl Checkpoint {
    /// The `state` column.
    pub fn to_json(&self) -> serde_json::Value {
        let stored =
            Stored { v: VERSION, max_event: self.max_event, counted: self.counted.clone(), held: self.held.clone() };
        serde_json::to_value(stored).unwrap_or(serde_json::Value::Null)
    }

    /// From the columns; a shape this build does not know is an error.
    pub fn from_row(resume: i64, processed: i64, state: &serde_json::Value) -> Result<Self, CheckpointError> {
        let s: Stored = serde_json::from_value(state.clone()).map_err(CheckpointError::Unreadable)?;
        if s.v != VERSION {
            return Err(CheckpointError::Version { found: s.v });
        }
        Ok(Self { resume, processed, max_event: s.max_event, counted: s.counted, held: s.held })
    }
}

/// What to do with a flow batch at some offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Done before the restart: skip it.
    Done,
    /// A second copy of a batch already counted: skip it.
    Copy,
    /// Count it.
    Count,
}

impl Partition {
    /// A partition read from its committed offset; `checkpointing`: its
    /// checkpoints are written.
    pub fn new(checkpointing: bool) -> Self {
        Self { checkpointing, ..Self::default() }
    }

    /// A partition resuming from `cp`.
    pub fn resumed(cp: &Checkpoint) -> Self {
        let counted = cp.counted.iter().map(|(t, p, o, l)| ((Arc::<str>::from(t.as_str()), *p), (*o, *l))).collect();
        let replay = (cp.processed > cp.resume)
            .then(|| Replay { processed: cp.processed, held: cp.held.iter().copied().collect() });
        Self { resume: cp.resume, replay, counted, checkpointing: true, ..Self::default() }
    }

    /// Whether the batch at `offset` whose first record comes from `source`
    /// at `pos` is counted; records the decision.
    pub fn admit(&mut self, offset: i64, source: Option<(SourceKey, SourcePos)>) -> Admit {
        self.next = self.next.max(offset + 1);
        if offset < self.resume {
            return Admit::Done;
        }
        self.dirty = true;
        let Some((key, pos)) = source else { return Admit::Count };
        match self.counted.get(&key) {
            Some(newest) if pos <= *newest => Admit::Copy,
            before => {
                if self.checkpointing {
                    self.undo.push_back((offset, key.clone(), before.copied()));
                }
                self.counted.insert(key, pos);
                Admit::Count
            }
        }
    }

    /// Whether a message at `offset` is replayed (the first run processed it).
    pub fn replaying(&self, offset: i64) -> bool {
        self.replay.as_ref().is_some_and(|r| offset < r.processed)
    }

    /// Whether the replay is over once `next` is reached; ends it.
    pub fn finish_replay(&mut self) -> bool {
        if self.replay.as_ref().is_some_and(|r| self.next >= r.processed) {
            self.replay = None;
            return true;
        }
        false
    }

    /// The checkpoint for offsets stored at `resume` (after the last message,
    /// or the oldest offset still held in memory), with the partition's
    /// highest event time and its held records.
    ///
    /// `None` while the partition has not reached its previous resume offset
    /// (nothing new to say: the stored checkpoint still holds).
    pub fn checkpoint(&mut self, resume: i64, max_event: Option<Micros>, held: Vec<(i64, u32)>) -> Option<Checkpoint> {
        if self.next < self.resume {
            return None;
        }
        let resume = resume.max(self.resume);
        let mut counted = self.counted.clone();
        for (offset, key, before) in self.undo.iter().rev() {
            if *offset < resume {
                break;
            }
            match before {
                Some(pos) => counted.insert(key.clone(), *pos),
                None => counted.remove(key),
            };
        }
        // Offsets stored only grow: older changes are never undone again.
        while self.undo.front().is_some_and(|(o, _, _)| *o < resume) {
            self.undo.pop_front();
        }
        let mut held = held;
        let mut processed = self.next;
        if let Some(r) = &self.replay {
            // Not replayed yet: still held as far as the first run knew.
            held.extend(r.held.iter().filter(|(o, _)| *o >= self.next).copied());
            processed = processed.max(r.processed);
        }
        held.sort_unstable();
        held.dedup();
        let mut counted: Vec<_> = counted.into_iter().map(|((t, p), (o, l))| (t.to_string(), p, o, l)).collect();
        counted.sort_unstable();
        self.dirty = false;
        Some(Checkpoint { resume, processed: processed.max(resume), max_event, counted, held })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(p: i32, o: i64) -> Option<(SourceKey, SourcePos)> {
        Some(((Arc::from("flowlogs.raw"), p), (o, 1)))
    }

    #[test]
    fn copies_are_skipped_and_the_counted_state_is_rebuilt_as_of_the_resume_offset() {
        let mut part = Partition::new(true);
        assert_eq!(part.admit(0, src(0, 10)), Admit::Count);
        assert_eq!(part.admit(1, src(1, 5)), Admit::Count);
        assert_eq!(part.admit(2, src(0, 10)), Admit::Copy);
        assert_eq!(part.admit(3, src(0, 11)), Admit::Count);
        // Stored at 1: source partition 0 had 10 counted, 1 nothing yet.
        let cp = part.checkpoint(1, Some(7), vec![]).expect("checkpoint");
        assert_eq!((cp.resume, cp.processed, cp.max_event), (1, 4, Some(7)));
        assert_eq!(cp.counted, vec![("flowlogs.raw".to_owned(), 0, 10, 1)]);

        let json = cp.to_json();
        let back = Checkpoint::from_row(1, 4, &json).expect("read back");
        assert_eq!(back, cp);
        let mut again = Partition::resumed(&back);
        assert_eq!(again.admit(0, src(0, 10)), Admit::Done);
        assert!(again.replaying(1));
        assert_eq!(again.admit(1, src(1, 5)), Admit::Count);
        assert_eq!(again.admit(2, src(0, 10)), Admit::Copy, "the copy after the resume offset");
        assert_eq!(again.admit(3, src(0, 11)), Admit::Count);
        assert!(again.finish_replay());
        assert!(!again.replaying(4));
    }

    #[test]
    fn nothing_is_checkpointed_before_the_previous_resume_offset_is_reached() {
        let cp = Checkpoint { resume: 5, processed: 8, held: vec![(6, 0), (7, 2)], ..Checkpoint::default() };
        let mut part = Partition::resumed(&cp);
        assert_eq!(part.admit(3, None), Admit::Done);
        assert_eq!(part.checkpoint(4, None, vec![]), None);
        assert_eq!(part.admit(5, None), Admit::Count);
        let next = part.checkpoint(5, None, vec![]).expect("checkpoint");
        assert_eq!((next.resume, next.processed), (5, 8), "still replaying up to 8");
        assert_eq!(next.held, vec![(6, 0), (7, 2)], "held records not replayed yet stay held");
    }

    #[test]
    fn unknown_versions_are_refused() {
        let state = serde_json::json!({"v": 99, "max_event": null, "counted": [], "held": []});
        assert!(Checkpoint::from_row(0, 0, &state).unwrap_err().to_string().contains("version 99"));
    }
}
