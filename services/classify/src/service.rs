//! The classify [`Processor`]: inventory from the `resources` table topic
//! and edges from `flows.edges` into the [`Engine`]; changed decisions and
//! new alerts out to `scope.decisions`, `scope.alerts` and their tables.

use std::collections::{HashMap, HashSet};

use psg_config::Config;
use psg_domain::rows::{AlertRow, ResourceRow, ScopeDecisionRow};
use psg_domain::time::{DAY, from_micros, now_micros};
use psg_domain::{
    Alert, AlertStatus, AlertType, CloudProvider, DecisionMethod, EndpointKind, FlowCoverage, FlowEdge, ManualDecision,
    Resource, ScopeDecision, ScopeRule, ids,
};
use psg_kafka_runtime::topics::TopicSpec;
use psg_kafka_runtime::{DeadLetter, InMessage, InputKind, OutRecord, Output, ProcessError, Processor};
use psg_store::Store;
use uuid::Uuid;

use crate::engine::{AlertCandidate, AlertEvent, Change, Engine, Outcome, Settings};

/// `decided_by` of automated decisions.
pub const CLASSIFIER: &str = "automated-classifier";

/// The classify service.
#[derive(Debug)]
pub struct Classify {
    edges_topic: String,
    resources_topic: String,
    manual_topic: String,
    coverage_topic: String,
    decisions_out: String,
    alerts_out: String,
    ocsf_out: Option<String>,
    dead_letter: String,
    engine: Engine,
    store: Option<Store>,
    /// Rows of every resource that may get a decision.
    rows: HashMap<String, ResourceRow>,
    /// Current decision id per resource.
    current: HashMap<String, String>,
    /// Who made each resource's manual decision.
    manual_by: HashMap<String, String>,
    alerted: HashSet<Uuid>,
    ensured: HashSet<String>,
    pending_resources: Vec<ResourceRow>,
    pending_decisions: Vec<ScopeDecisionRow>,
    pending_alerts: Vec<AlertRow>,
    /// When the graph gauges were last set.
    gauges_at: Option<std::time::Instant>,
}

impl Classify {
    /// A classifier without a segmentation policy.
    pub fn new(cfg: &Config, store: Option<Store>) -> Self {
        Self::with_policy(cfg, store, None)
    }

    /// A classifier; with `policy`, flows touching the CDE need an allow rule.
    pub fn with_policy(cfg: &Config, store: Option<Store>, policy: Option<crate::policy::Policy>) -> Self {
        Self {
            edges_topic: cfg.topics.flows_edges.clone(),
            resources_topic: cfg.topics.resources.clone(),
            manual_topic: cfg.topics.scope_manual.clone(),
            coverage_topic: cfg.topics.flows_coverage.clone(),
            decisions_out: cfg.topics.scope_decisions.clone(),
            alerts_out: cfg.topics.scope_alerts.clone(),
            ocsf_out: cfg.classify.ocsf_topic.clone(),
            dead_letter: cfg.topics.classify_dlq.clone(),
            engine: Engine::new(Settings {
                scope_tag_key: cfg.classify.scope_tag_key.clone(),
                data_tag_key: cfg.classify.data_tag_key.clone(),
                lookback: i64::from(cfg.classify.lookback_days) * DAY,
                policy: policy.map(std::sync::Arc::new),
                coverage_grace: i64::from(cfg.classify.coverage_grace_minutes) * 60 * psg_domain::time::SECOND,
            }),
            store,
            rows: HashMap::new(),
            current: HashMap::new(),
            manual_by: HashMap::new(),
            alerted: HashSet::new(),
            ensured: HashSet::new(),
            pending_resources: Vec::new(),
            pending_decisions: Vec::new(),
            pending_alerts: Vec::new(),
            gauges_at: None,
        }
    }

    /// Applies a message of `scope.manual`: a manual decision, or its withdrawal.
    fn manual(&mut self, msg: &InMessage, out: &mut Output) {
        let Some(payload) = msg.payload.as_deref() else {
            // A compaction tombstone withdraws the decision of its key.
            if let Some(rid) = msg.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) {
                self.engine.set_manual(rid, None);
                self.manual_by.remove(rid);
            }
            return;
        };
        match psg_avro_codec::decode::<ManualDecision>(payload) {
            Ok(m) => {
                let manual = m.scope.map(|s| (s, format!("{} (by {})", m.justification, m.decided_by)));
                if manual.is_some() {
                    self.manual_by.insert(m.resource_id.clone(), m.decided_by.clone());
                } else {
                    self.manual_by.remove(&m.resource_id);
                }
                self.engine.set_manual(&m.resource_id, manual);
            }
            Err(e) => out.dead_letters.push(DeadLetter::whole(msg, "schema", e.to_string())),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Rebuilds the graph, the current decisions and the raised alerts from
    /// the database, so that a restart neither repeats nor loses anything.
    pub async fn restore(&mut self) -> Result<(), psg_store::Error> {
        let Some(store) = self.store.clone() else { return Ok(()) };
        let decisions = psg_store::decisions::current_decisions(&store).await?;
        for d in &decisions {
            let (Ok(scope), classification) =
                (d.scope.parse(), d.data_classification.as_deref().and_then(|c| c.parse().ok()))
            else {
                continue;
            };
            let rule = if d.decision_method == DecisionMethod::Manual.as_str() {
                ScopeRule::ManualDecision
            } else {
                ScopeRule::NoScopeTag
            };
            self.engine.remember(
                &d.resource_id,
                Outcome {
                    scope,
                    classification,
                    rule,
                    justification: d.justification.clone(),
                    dependencies: Vec::new(),
                },
            );
            self.current.insert(d.resource_id.clone(), d.id.to_string());
        }
        let edges = psg_store::flows::edges_since(&store, from_micros(0)).await?;
        for e in &edges {
            let kind = |t: &str| match t {
                "unknown_host" => EndpointKind::UnknownHost,
                "external_endpoint" => EndpointKind::External,
                _ => EndpointKind::Resource,
            };
            let (Ok(action), src_kind, dst_kind) = (e.action.parse(), kind(&e.source_type), kind(&e.dest_type)) else {
                continue;
            };
            let address = |id: &str| id.strip_prefix("ip:").map(str::to_owned);
            self.engine.observe(
                &e.source_resource_id,
                src_kind,
                address(&e.source_resource_id).as_deref(),
                &e.dest_resource_id,
                dst_kind,
                address(&e.dest_resource_id).as_deref(),
                (protocol_number(&e.protocol), e.dst_port, action),
                e.first_seen.timestamp_micros(),
                e.last_seen.timestamp_micros(),
                e.flows,
                e.action_logged,
            );
            for (id, k) in [(&e.source_resource_id, src_kind), (&e.dest_resource_id, dst_kind)] {
                if k == EndpointKind::UnknownHost {
                    self.ensured.insert(id.clone());
                }
            }
        }
        self.alerted = psg_store::decisions::alert_ids(&store).await?;
        tracing::info!(
            decisions = decisions.len(),
            edges = edges.len(),
            alerts = self.alerted.len(),
            "classify state restored from the database"
        );
        Ok(())
    }

    fn decision(&mut self, change: &Change, as_of: i64, out: &mut Output) {
        let rid = &change.resource_id;
        let o = &change.outcome;
        let supersedes = self.current.get(rid).cloned();
        let id = ids::stable_id(
            "decision",
            &[
                rid,
                supersedes.as_deref().unwrap_or("-"),
                o.scope.as_str(),
                o.classification.map_or("-", |c| c.as_str()),
            ],
        );
        let manual = o.rule == ScopeRule::ManualDecision;
        let msg = ScopeDecision {
            decision_id: id.to_string(),
            resource_id: rid.clone(),
            resource_uuid: ids::resource_uuid(rid).to_string(),
            scope: o.scope,
            previous_scope: change.previous.as_ref().map(|p| p.scope),
            data_classification: o.classification,
            segment: None,
            rule: o.rule,
            justification: o.justification.clone(),
            decided_at: now_micros(),
            decided_by: match manual {
                true => self.manual_by.get(rid).cloned().unwrap_or_else(|| "operator".to_owned()),
                false => CLASSIFIER.to_owned(),
            },
            decision_method: if manual { DecisionMethod::Manual } else { DecisionMethod::Automated },
            supersedes_id: supersedes,
            dependency_resource_ids: o.dependencies.clone(),
            as_of,
        };
        match psg_avro_codec::encode(&msg) {
            Ok(bytes) => out.records.push(OutRecord::new(&self.decisions_out, rid.as_bytes(), bytes)),
            Err(e) => {
                tracing::error!(error = %e, resource = %rid, "cannot encode a decision");
                return;
            }
        }
        metrics::counter!("psg_classify_decisions_total", "scope" => o.scope.as_str()).increment(1);
        self.current.insert(rid.clone(), msg.decision_id.clone());
        if self.store.is_some() {
            self.queue_resource(rid);
            self.pending_decisions.push(ScopeDecisionRow {
                id,
                resource_id: ids::resource_uuid(rid),
                scope: o.scope,
                data_classification: o.classification,
                segment: None,
                justification: o.justification.clone(),
                confidence_score: None,
                decided_at: from_micros(msg.decided_at),
                decided_by: msg.decided_by.clone(),
                decision_method: msg.decision_method,
                is_current: true,
                superseded_by_id: None,
                dependency_resource_ids: serde_json::json!(o.dependencies),
            });
        }
    }

    /// Publishes an alert's event: a raised alert (once: `alerted` holds
    /// the ids open, acknowledged or marked false positive, also those in
    /// the database at start), an updated one, a resolved one (status
    /// `resolved`, resolved by the classifier).
    fn alert(&mut self, a: AlertCandidate, out: &mut Output) {
        let id = ids::stable_id("alert", &[a.alert_type.as_str(), &a.resource_id, &a.cause]);
        let publish = match a.event {
            AlertEvent::Raised => self.alerted.insert(id),
            AlertEvent::Updated => {
                self.alerted.insert(id);
                true
            }
            AlertEvent::Resolved => self.alerted.remove(&id),
        };
        if !publish {
            return;
        }
        let now = now_micros();
        let resolved = a.event == AlertEvent::Resolved;
        let mut context: HashMap<String, String> = a.context.into_iter().collect();
        context.insert("event".into(), a.event.as_str().into());
        if resolved {
            context.insert("resolved_at".into(), psg_domain::time::rfc3339(now));
            context.insert("resolved_by".into(), CLASSIFIER.into());
        }
        let msg = Alert {
            alert_id: id.to_string(),
            alert_type: a.alert_type,
            severity: a.alert_type.severity(),
            title: a.title,
            description: a.description,
            resource_id: Some(a.resource_id.clone()),
            triggered_at: now,
            pci_requirement: Some(a.pci_requirement.to_owned()),
            status: if resolved { AlertStatus::Resolved } else { AlertStatus::Open },
            context,
        };
        match psg_avro_codec::encode(&msg) {
            Ok(bytes) => out.records.push(OutRecord::new(&self.alerts_out, msg.alert_id.as_bytes(), bytes)),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an alert");
                return;
            }
        }
        if let Some(topic) = &self.ocsf_out {
            let finding = crate::ocsf::detection_finding(&msg, a.event).to_string().into_bytes();
            out.records.push(OutRecord::new(topic, msg.alert_id.as_bytes(), finding));
        }
        let kind = msg.alert_type.as_str();
        match a.event {
            AlertEvent::Raised => metrics::counter!("psg_classify_alerts_total", "type" => kind).increment(1),
            AlertEvent::Updated => metrics::counter!("psg_classify_alerts_updated_total", "type" => kind).increment(1),
            AlertEvent::Resolved => {
                metrics::counter!("psg_classify_alerts_resolved_total", "type" => kind).increment(1)
            }
        }
        tracing::info!(alert = %msg.alert_type, severity = %msg.severity, event = a.event.as_str(), title = %msg.title, "alert");
        if self.store.is_some() {
            // A coverage gap is a VPC's or subnet's, not an inventory
            // resource's: its row names none (the context names the place).
            let resource = (a.alert_type != AlertType::CoverageGap).then(|| ids::resource_uuid(&a.resource_id));
            if resource.is_some() {
                self.queue_resource(&a.resource_id);
            }
            let mut context: serde_json::Map<String, serde_json::Value> =
                msg.context.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
            context.insert("pci_requirement".into(), serde_json::Value::String(a.pci_requirement.to_owned()));
            self.pending_alerts.push(AlertRow {
                id,
                severity: msg.severity,
                alert_type: msg.alert_type,
                title: msg.title.clone(),
                description: msg.description.clone(),
                resource_id: resource,
                triggered_at: from_micros(msg.triggered_at),
                acknowledged_at: None,
                acknowledged_by: None,
                resolved_at: resolved.then(|| from_micros(now)),
                resolved_by: resolved.then(|| CLASSIFIER.to_owned()),
                status: msg.status,
                context: serde_json::Value::Object(context),
            });
        }
    }

    fn queue_resource(&mut self, rid: &str) {
        if !self.ensured.contains(rid)
            && let Some(row) = self.rows.get(rid)
        {
            self.pending_resources.push(row.clone());
        }
    }
}

fn protocol_number(name: &str) -> i32 {
    match name {
        "ICMP" => 1,
        "TCP" => 6,
        "UDP" => 17,
        "ICMPv6" => 58,
        n => n.parse().unwrap_or(0),
    }
}

/// Why classify could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error("restoring from the database: {0}")]
    Restore(#[from] psg_store::Error),
}

impl psg_service::BuildFailure for BuildError {
    fn is_setting(&self) -> bool {
        matches!(self, Self::Policy(_))
    }
}

impl psg_service::Service for Classify {
    const NAME: &'static str = "classify";
    const CONFIG_SECTION: &'static str = "classify";
    type Error = BuildError;

    /// Loads the segmentation policy (`classify.policy-file`), then restores
    /// the graph, decisions and alerts from the database.
    async fn build(cfg: &Config, store: Option<Store>) -> Result<Self, Self::Error> {
        let policy = match &cfg.classify.policy_file {
            Some(path) => {
                let p = crate::policy::Policy::load(path)?;
                tracing::info!(policy = %path.display(), "segmentation policy loaded");
                Some(p)
            }
            None => None,
        };
        let mut c = Self::with_policy(cfg, store, policy);
        c.restore().await?;
        Ok(c)
    }

    fn topics(&self) -> psg_service::Topics {
        let mut outputs = vec![TopicSpec::stream(&self.decisions_out), TopicSpec::stream(&self.alerts_out)];
        outputs.extend(self.ocsf_out.iter().map(TopicSpec::stream));
        psg_service::Topics {
            streams: vec![self.edges_topic.clone()],
            tables: vec![self.resources_topic.clone(), self.manual_topic.clone(), self.coverage_topic.clone()],
            outputs,
            dead_letter: self.dead_letter.clone(),
        }
    }
}

impl Processor for Classify {
    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        let mut out = Output::default();
        for msg in batch {
            if msg.kind == InputKind::Table && *msg.topic == *self.manual_topic {
                self.manual(msg, &mut out);
                continue;
            }
            if msg.kind == InputKind::Table && *msg.topic == *self.coverage_topic {
                if msg.payload.is_some() {
                    match psg_avro_codec::decode::<FlowCoverage>(msg.payload()) {
                        Ok(c) => self.engine.observe_coverage(&c),
                        Err(e) => out.dead_letters.push(DeadLetter::whole(msg, "schema", e.to_string())),
                    }
                }
                continue;
            }
            if msg.kind == InputKind::Table {
                if msg.payload.is_none() {
                    continue;
                }
                match psg_avro_codec::decode::<Resource>(msg.payload()) {
                    Ok(r) => {
                        self.engine.upsert_resource(&r);
                        self.rows.insert(r.resource_id.clone(), ResourceRow::from_message(&r));
                    }
                    Err(e) => out.dead_letters.push(DeadLetter::whole(msg, "schema", e.to_string())),
                }
                continue;
            }
            match psg_avro_codec::decode::<FlowEdge>(msg.payload()) {
                Ok(e) => {
                    for end in [&e.src, &e.dst] {
                        if end.kind == EndpointKind::UnknownHost && !self.rows.contains_key(&end.resource_id) {
                            let addr = end.address.clone().unwrap_or_else(|| end.resource_id.clone());
                            let row = ResourceRow::for_address(
                                &addr,
                                true,
                                CloudProvider::OnPremise,
                                from_micros(e.first_seen),
                            );
                            self.rows.insert(end.resource_id.clone(), row);
                        }
                    }
                    self.engine.add_edge(&e);
                }
                Err(e) => out.dead_letters.push(DeadLetter::whole(msg, "schema", e.to_string())),
            }
        }
        let started = std::time::Instant::now();
        let (changes, alerts) = self.engine.recompute();
        metrics::histogram!("psg_classify_recompute_seconds").record(started.elapsed().as_secs_f64());
        let as_of = self.engine.watermark().max(0);
        for change in &changes {
            self.decision(change, as_of, &mut out);
        }
        for alert in alerts {
            self.alert(alert, &mut out);
        }
        // Counting the edges walks the graph: at most once a second.
        if self.gauges_at.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1)) {
            self.gauges_at = Some(std::time::Instant::now());
            metrics::gauge!("psg_classify_graph_nodes").set(self.engine.node_count() as f64);
            metrics::gauge!("psg_classify_graph_edges").set(self.engine.edge_count() as f64);
        }
        Ok(out)
    }

    async fn persist(&mut self) -> Result<(), ProcessError> {
        let Some(store) = &self.store else { return Ok(()) };
        let classify = |e: psg_store::Error| ProcessError::classify(e.is_transient(), e);
        if !self.pending_resources.is_empty() {
            psg_store::resources::ensure_resources(store, &self.pending_resources).await.map_err(classify)?;
            self.ensured.extend(self.pending_resources.drain(..).map(|r| r.resource_id));
        }
        psg_store::decisions::write_decisions(store, &self.pending_decisions).await.map_err(classify)?;
        self.pending_decisions.clear();
        psg_store::decisions::insert_alerts(store, &self.pending_alerts).await.map_err(classify)?;
        self.pending_alerts.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
