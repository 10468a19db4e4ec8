//! What the run sustained: progress lines and the summary.

use std::fmt::Write as _;
use std::time::Duration;

use crate::probes::{Effect, Probe};
use crate::sample::Sample;
use crate::{GROWTH_FLAG, SERVICES, Settings};

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(crate) fn pct(sorted: &[Duration], p: f64) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    format!("{:.0}", sorted[i].as_secs_f64() * 1e3)
}

pub(crate) fn latencies(probes: &[Probe], field: Effect) -> Vec<Duration> {
    let mut v: Vec<Duration> = probes.iter().filter_map(field).collect();
    v.sort();
    v
}

pub(crate) fn rate(a: &Sample, b: &Sample, f: impl Fn(&Sample) -> f64) -> f64 {
    let dt = b.t - a.t;
    if dt <= 0.0 { 0.0 } else { (f(b) - f(a)) / dt }
}

/// One line: the last 30 s.
pub(crate) fn progress(samples: &[Sample], probes: &[Probe], secs: u64) {
    let Some(b) = samples.last() else { return };
    let Some(a) = samples.iter().rev().find(|x| x.t <= b.t - 29.0).or(samples.first()) else { return };
    let recent: Vec<Probe> = probes.iter().filter(|p| p.sent.is_some() && p.at > a.t && p.at <= b.t).cloned().collect();
    let alerts = latencies(&recent, |p| p.alert);
    let mut line = format!(
        "[{:>4.0}/{secs} s] offered {:.0} lines/s | ingest {:.0} rec/s, correlate {:.0} rec/s, classify {:.0} msg/s, evidence {:.0} msg/s | lag",
        b.t,
        rate(a, b, |x| x.offered as f64),
        rate(a, b, |x| x.svc[0].records),
        rate(a, b, |x| x.svc[1].records),
        rate(a, b, |x| x.svc[2].records),
        rate(a, b, |x| x.svc[3].records),
    );
    for (i, name) in SERVICES.iter().enumerate() {
        let _ = write!(line, " {name} {}", b.lag[i].committed);
    }
    let _ = write!(
        line,
        " | probe alerts {}/{} p50 {} ms max {} ms | RSS MiB",
        alerts.len(),
        recent.len(),
        pct(&alerts, 0.5),
        pct(&alerts, 1.0)
    );
    for (i, name) in SERVICES.iter().chain(&["tansu"]).enumerate() {
        let _ = write!(line, " {name} {:.0}", mib(b.mem[i].0));
    }
    println!("{line}");
}

pub(crate) fn cpu_percent(a: &Sample, b: &Sample, i: usize, ticks: f64) -> f64 {
    b.cpu[i].saturating_sub(a.cpu[i]) as f64 / ticks / (b.t - a.t).max(1e-9) * 100.0
}

pub(crate) struct Outcome<'a> {
    pub(crate) samples: &'a [Sample],
    pub(crate) probes: &'a [Probe],
    /// After the drain.
    pub(crate) end: &'a Sample,
    /// Seconds after the load until every line was through ingest and correlate.
    pub(crate) drained: Option<f64>,
    pub(crate) total_lines: u64,
    pub(crate) ticks: f64,
}

pub(crate) fn summary(s: &Settings, o: &Outcome<'_>) {
    let (Some(first), Some(last)) = (o.samples.first(), o.samples.last()) else { return };
    let (samples, end) = (o.samples, o.end);
    let sent = o.probes.iter().filter(|p| p.sent.is_some()).count();
    println!(
        "\n=== sustained load: {:.0} s at {} flow lines/s, {} resources + {} probe hosts ===",
        last.t,
        s.rate,
        s.resources,
        o.probes.len()
    );
    println!(
        "offered: {:.0} lines/s on average ({} lines in messages of up to {}, acknowledged by the broker) + {sent} probes",
        rate(first, last, |x| x.offered as f64),
        last.offered - first.offered,
        s.batch,
    );
    println!(
        "\nthroughput over the load period (each service's /metrics; CPU %: of one core; generator: this process):"
    );
    println!(
        "  {:<10} {:>11} {:>11} {:<14} {:>11} {:>7} {:>6}",
        "service", "messages/s", "records/s", "(records are)", "produced/s", "CPU %", "DLQ"
    );
    let what = ["flow records", "flow records", "edges", "decis.+edges"];
    for (i, name) in SERVICES.iter().enumerate() {
        println!(
            "  {:<10} {:>11.1} {:>11.0} {:<14} {:>11.1} {:>7.0} {:>6.0}",
            name,
            rate(first, last, |x| x.svc[i].messages),
            rate(first, last, |x| x.svc[i].records),
            what[i],
            rate(first, last, |x| x.svc[i].produced),
            cpu_percent(first, last, i, o.ticks),
            end.svc[i].dead_letters,
        );
    }
    for (i, name) in [(4, "tansu"), (5, "generator")] {
        println!(
            "  {:<10} {:>11} {:>11} {:<14} {:>11} {:>7.0}",
            name,
            "",
            "",
            "",
            "",
            cpu_percent(first, last, i, o.ticks)
        );
    }
    match o.drained {
        Some(d) => println!(
            "  every flow line ({}) was through ingest and correlate {d:.1} s after the load ended",
            o.total_lines
        ),
        None => println!(
            "  NOT DRAINED {} s after the load: ingest {:.0}, correlate {:.0} of {} flow lines",
            s.drain_secs, end.svc[0].records, end.svc[1].records, o.total_lines
        ),
    }

    println!("\nend-to-end latency of the probes (flow produced to flowlogs.raw → effect consumed), ms:");
    println!("  {:<44} {:>5} {:>6} {:>6} {:>6} {:>6} {:>8}", "effect", "seen", "p50", "p90", "p99", "max", "missing");
    let effects: [(&str, Effect); 3] = [
        ("first-seen edge on flows.edges", |p| p.edge),
        ("connected-cde decision on scope.decisions", |p| p.decision),
        ("segmentation_violation alert on scope.alerts", |p| p.alert),
    ];
    for (label, f) in effects {
        let v = latencies(o.probes, f);
        println!(
            "  {:<44} {:>5} {:>6} {:>6} {:>6} {:>6} {:>8}",
            label,
            v.len(),
            pct(&v, 0.5),
            pct(&v, 0.9),
            pct(&v, 0.99),
            pct(&v, 1.0),
            sent - v.len()
        );
    }

    println!("\nconsumer lag per group, in messages: committed offsets vs high watermarks, every 10 s of the load;");
    println!("backlog: high watermarks of every topic it reads vs messages it consumed (what it has not yet read)");
    println!(
        "  {:<10} {:>8} {:>8} {:>12} {:>12} {:>14}",
        "group", "lag avg", "lag max", "backlog avg", "backlog max", "after drain"
    );
    for (i, name) in SERVICES.iter().enumerate() {
        let lags: Vec<i64> = samples.iter().map(|x| x.lag[i].committed).collect();
        let backlogs: Vec<i64> = samples.iter().map(|x| x.backlog(i)).collect();
        let avg = |v: &[i64]| v.iter().sum::<i64>() as f64 / v.len().max(1) as f64;
        println!(
            "  {:<10} {:>8.0} {:>8} {:>12.0} {:>12} {:>14}",
            name,
            avg(&lags),
            lags.iter().max().unwrap_or(&0),
            avg(&backlogs),
            backlogs.iter().max().unwrap_or(&0),
            format!("{} / {}", end.lag[i].committed, end.backlog(i)),
        );
    }
    println!("  (correlate commits only past closed windows: its lag holds window + lateness of input by design)");

    // Timeline: lag and RSS, at most ~20 rows.
    let every = samples.len().div_ceil(20).max(1);
    println!("\ntimeline: committed lag (messages) and RSS (MiB) per process");
    println!(
        "  {:>5} {:>9} | {:>7} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} {:>7} {:>7}",
        "t s", "offered/s", "ingest", "correl", "classif", "evid", "ingest", "correl", "classif", "evid", "tansu"
    );
    for (k, x) in samples.iter().enumerate() {
        if k % every != 0 && k + 1 != samples.len() {
            continue;
        }
        let prev = &samples[k.saturating_sub(every).min(k.saturating_sub(1))];
        println!(
            "  {:>5.0} {:>9.0} | {:>7} {:>7} {:>7} {:>7} | {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>7.0}",
            x.t,
            rate(prev, x, |y| y.offered as f64),
            x.lag[0].committed,
            x.lag[1].committed,
            x.lag[2].committed,
            x.lag[3].committed,
            mib(x.mem[0].0),
            mib(x.mem[1].0),
            mib(x.mem[2].0),
            mib(x.mem[3].0),
            mib(x.mem[4].0),
        );
    }

    // Memory trend: the first vs the last minute of the load (thirds of a run under 3 min),
    // and, as correlate's window state fills until its first windows close, from the end of
    // that warm-up (two windows plus the lateness) to the last minute.
    let w = (last.t / 3.0).min(60.0);
    let warm = (2 * s.window_secs + s.lateness_secs) as f64;
    let avg = |i: usize, lo: f64, hi: f64| {
        let v: Vec<u64> = samples.iter().filter(|x| x.t >= lo - 0.5 && x.t <= hi + 0.5).map(|x| x.mem[i].0).collect();
        v.iter().sum::<u64>() as f64 / v.len().max(1) as f64
    };
    let growth = |a: f64, b: f64| if a > 0.0 { b / a - 1.0 } else { 0.0 };
    println!(
        "\nmemory per process: RSS averaged over the first and the last {w:.0} s of the load; after warm-up: from the \
         {w:.0} s after {warm:.0} s (2 windows + lateness) to the last {w:.0} s; peak = VmHWM"
    );
    println!(
        "  {:<10} {:>10} {:>10} {:>8} {:>14} {:>10}",
        "process", "first MiB", "last MiB", "growth", "after warm-up", "peak MiB"
    );
    for (i, name) in SERVICES.iter().chain(&["tansu"]).enumerate() {
        let (a, b) = (avg(i, 0.0, w), avg(i, last.t - w, last.t));
        let total = growth(a, b);
        let after = if last.t >= warm + 2.0 * w {
            format!("{:.1}%", growth(avg(i, warm, warm + w), b) * 100.0)
        } else {
            "- (short run)".to_owned()
        };
        let peak = samples.iter().map(|x| x.mem[i].1).chain([end.mem[i].1]).max().unwrap_or(0);
        let flag = match (total > GROWTH_FLAG, i == 4) {
            (true, false) => "  GROWS > 20 %",
            (true, true) => "  GROWS > 20 % (memory storage keeps every record)",
            _ => "",
        };
        println!(
            "  {:<10} {:>10.1} {:>10.1} {:>7.1}% {:>14} {:>10.1}{flag}",
            name,
            a / 1024.0,
            b / 1024.0,
            total * 100.0,
            after,
            mib(peak)
        );
    }
}
