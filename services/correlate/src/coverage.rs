//! Flow-log coverage, from the flow stream itself: per unit (the finest
//! thing a record names: interface, else instance, subnet or network) and
//! input partition, the first and last record, the records by what they
//! say, and the gaps. Pure: no Kafka, no database.
//!
//! Every record counts, whatever its status: a `NODATA` record proves that
//! the unit's flow logs are delivered, a `SKIPDATA` one that some were lost.
//! A unit is published (as a [`FlowCoverage`]) when first seen, when a gap
//! ends, when a new kind of record appears, and otherwise at most once per
//! report interval of event time, so the topic stays small and the
//! consumer's view is never older than that interval.

use std::collections::HashMap;

use psg_domain::time::Micros;
use psg_domain::{CoverageGap, CoverageUnit, FlowAction, FlowCoverage, FlowRecord, LogStatus, Text};

/// Gaps kept per unit: the latest.
pub const MAX_GAPS: usize = 16;

/// Where a record places its unit, where the record does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
}

/// The coverage of every unit seen, per input partition.
#[derive(Debug)]
pub struct Coverage {
    gap: Micros,
    report_every: Micros,
    /// Per input partition, per unit id.
    units: HashMap<i32, HashMap<String, Unit>>,
    /// Units to publish at the next [`Coverage::take_reports`].
    changed: Vec<(i32, String)>,
}

#[derive(Debug)]
struct Unit {
    report: FlowCoverage,
    /// `last_seen` when last published.
    published: Option<Micros>,
    queued: bool,
}

impl Coverage {
    /// `gap`: silence longer than this between two records is a gap;
    /// `report_every`: event time between two publications of a unit whose
    /// records keep coming.
    pub fn new(gap: Micros, report_every: Micros) -> Self {
        Self { gap: gap.max(1), report_every, units: HashMap::new(), changed: Vec::new() }
    }

    /// Units known (all partitions).
    pub fn units(&self) -> usize {
        self.units.values().map(HashMap::len).sum()
    }

    /// Counts one record of input `partition`. `place`: where the
    /// inventory puts the record's interface, for what the record itself
    /// does not say. A record naming no unit at all is not counted.
    pub fn observe(&mut self, partition: i32, rec: &FlowRecord, place: impl FnOnce() -> Place) {
        let Some((kind, id)) = unit_of(rec) else { return };
        let t = rec.end_time;
        let units = self.units.entry(partition).or_default();
        // Looked up by the borrowed id: no allocation per record.
        let unit = match units.get_mut(id) {
            Some(u) => u,
            None => {
                let place = place();
                let report = FlowCoverage {
                    unit: id.to_owned(),
                    unit_kind: kind,
                    provider: rec.provider,
                    account_id: owned(&rec.account_id),
                    vpc_id: owned(&rec.vpc_id).or(place.vpc_id),
                    subnet_id: owned(&rec.subnet_id).or(place.subnet_id),
                    partition,
                    first_seen: t,
                    last_seen: t,
                    records: 0,
                    accepted: 0,
                    rejected: 0,
                    no_data: 0,
                    skipped: 0,
                    gaps: Vec::new(),
                };
                units.entry(id.to_owned()).or_insert(Unit { report, published: None, queued: false })
            }
        };
        let r = &mut unit.report;
        let mut news = unit.published.is_none();
        let counter = match (rec.log_status, rec.action) {
            (LogStatus::NoData, _) => &mut r.no_data,
            (LogStatus::SkipData, _) => &mut r.skipped,
            (_, Some(FlowAction::Reject)) => &mut r.rejected,
            (_, _) => &mut r.accepted,
        };
        news |= *counter == 0;
        *counter += 1;
        r.records += 1;
        if t > r.last_seen {
            if t - r.last_seen > self.gap {
                r.gaps.push(CoverageGap { from: r.last_seen, to: t });
                if r.gaps.len() > MAX_GAPS {
                    r.gaps.remove(0);
                }
                news = true;
            }
            r.last_seen = t;
        } else if t < r.first_seen {
            r.first_seen = t;
        }
        if r.vpc_id.is_none() {
            r.vpc_id = owned(&rec.vpc_id);
        }
        if r.subnet_id.is_none() {
            r.subnet_id = owned(&rec.subnet_id);
        }
        let due = unit.published.is_none_or(|p| r.last_seen - p >= self.report_every);
        if (news || due) && !unit.queued {
            unit.queued = true;
            self.changed.push((partition, id.to_owned()));
        }
    }

    /// The coverage of every unit that changed enough since it was last
    /// published (see the module documentation).
    pub fn take_reports(&mut self) -> Vec<FlowCoverage> {
        let mut out = Vec::with_capacity(self.changed.len());
        for (partition, id) in self.changed.drain(..) {
            if let Some(u) = self.units.get_mut(&partition).and_then(|p| p.get_mut(&id)) {
                u.queued = false;
                u.published = Some(u.report.last_seen);
                out.push(u.report.clone());
            }
        }
        out
    }
}

/// A record's text as the coverage report's string.
fn owned(v: &Option<Text>) -> Option<String> {
    v.as_deref().map(str::to_owned)
}

/// The unit a record's coverage is of: the interface that captured it,
/// else the VM that reported it, else its subnet, else its network.
fn unit_of(rec: &FlowRecord) -> Option<(CoverageUnit, &str)> {
    fn given(v: &Option<Text>) -> Option<&str> {
        v.as_deref().filter(|s| !s.is_empty() && *s != "-")
    }
    if let Some(i) = given(&rec.interface_id) {
        return Some((CoverageUnit::Interface, i));
    }
    if let Some(i) = given(&rec.instance_id) {
        return Some((CoverageUnit::Instance, i));
    }
    if let Some(s) = given(&rec.subnet_id) {
        return Some((CoverageUnit::Subnet, s));
    }
    given(&rec.vpc_id).map(|v| (CoverageUnit::Network, v))
}

#[cfg(test)]
mod tests {
    use psg_domain::time::SECOND;
    use psg_domain::{CloudProvider, FlowFormat, SourceRef};

    use super::*;

    fn rec(eni: &str, t: i64, status: LogStatus, action: Option<FlowAction>) -> FlowRecord {
        let source = SourceRef { topic: "flowlogs.raw".into(), partition: 0, offset: 0, line: 1 };
        let mut r = FlowRecord::new(CloudProvider::Aws, FlowFormat::AwsVpc, source, t * SECOND, t * SECOND);
        r.interface_id = Some(eni.into());
        r.log_status = status;
        r.action = action;
        r
    }

    fn in_vpc() -> Place {
        Place { vpc_id: Some("vpc-1".into()), subnet_id: Some("subnet-1".into()) }
    }

    #[test]
    fn units_are_published_when_new_and_then_at_most_once_per_interval() {
        let mut c = Coverage::new(3_600 * SECOND, 900 * SECOND);
        c.observe(0, &rec("eni-1", 0, LogStatus::Ok, Some(FlowAction::Accept)), in_vpc);
        let first = c.take_reports();
        assert_eq!(first.len(), 1);
        let r = &first[0];
        assert_eq!(
            (r.unit.as_str(), r.unit_kind, r.vpc_id.as_deref()),
            ("eni-1", CoverageUnit::Interface, Some("vpc-1"))
        );
        assert_eq!((r.records, r.accepted, r.first_seen, r.last_seen), (1, 1, 0, 0));
        // Same kind of record, within the interval: nothing to say.
        c.observe(0, &rec("eni-1", 600, LogStatus::Ok, Some(FlowAction::Accept)), in_vpc);
        assert!(c.take_reports().is_empty());
        // A new kind (NODATA): at once.
        c.observe(0, &rec("eni-1", 700, LogStatus::NoData, None), in_vpc);
        let r = c.take_reports();
        assert_eq!((r[0].records, r[0].accepted, r[0].no_data, r[0].last_seen), (3, 2, 1, 700 * SECOND));
        // The interval passed.
        c.observe(0, &rec("eni-1", 1_700, LogStatus::Ok, Some(FlowAction::Accept)), in_vpc);
        assert_eq!(c.take_reports()[0].last_seen, 1_700 * SECOND);
    }

    #[test]
    fn silence_longer_than_the_gap_is_a_gap_and_late_records_move_the_start() {
        let mut c = Coverage::new(3_600 * SECOND, 900 * SECOND);
        c.observe(1, &rec("eni-1", 10_000, LogStatus::Ok, Some(FlowAction::Reject)), in_vpc);
        c.observe(1, &rec("eni-1", 10_000 + 7_200, LogStatus::SkipData, None), in_vpc);
        c.observe(1, &rec("eni-1", 5_000, LogStatus::Ok, Some(FlowAction::Reject)), in_vpc);
        let r = c.take_reports().pop().expect("published");
        assert_eq!(r.gaps, vec![CoverageGap { from: 10_000 * SECOND, to: 17_200 * SECOND }]);
        assert_eq!((r.first_seen, r.last_seen), (5_000 * SECOND, 17_200 * SECOND));
        assert_eq!((r.rejected, r.skipped, r.accepted), (2, 1, 0));
        assert_eq!(r.key(), "eni-1|1");
    }

    #[test]
    fn a_record_names_the_finest_unit_it_can() {
        let mut c = Coverage::new(SECOND, SECOND);
        let mut gcp = rec("", 1, LogStatus::Ok, Some(FlowAction::Accept));
        gcp.interface_id = None;
        gcp.instance_id = Some("vm-1".into());
        gcp.subnet_id = Some("subnet-a".into());
        let mut bare = gcp.clone();
        bare.instance_id = None;
        let mut nothing = bare.clone();
        nothing.subnet_id = None;
        for r in [&gcp, &bare, &nothing] {
            c.observe(0, r, Place::default);
        }
        let mut units: Vec<(CoverageUnit, String)> =
            c.take_reports().into_iter().map(|r| (r.unit_kind, r.unit)).collect();
        units.sort();
        assert_eq!(units, vec![(CoverageUnit::Instance, "vm-1".into()), (CoverageUnit::Subnet, "subnet-a".into())]);
    }
}
