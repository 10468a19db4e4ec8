//! Delivering a batch of outputs: enqueue in order, then wait for every
//! delivery report. A batch counts as delivered only when all of it is.

use std::time::Duration;

use futures::future::join_all;
use psg_config::KafkaConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::message::Output;
use crate::{Error, Result, client, dead_letter};

/// Produces outputs and dead letters and waits for their acknowledgements.
#[derive(Clone)]
pub struct Deliverer {
    producer: FutureProducer,
    service: String,
    dead_letter_topic: String,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("service", &self.service)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .finish_non_exhaustive()
    }
}

/// Records enqueued but not yet acknowledged.
pub struct Pending {
    futures: Vec<rdkafka::producer::DeliveryFuture>,
    service: String,
    delivered: Delivered,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("records", &self.futures.len()).finish()
    }
}

impl Pending {
    /// Waits for every acknowledgement; fails if any record was not delivered.
    pub async fn wait(self) -> Result<Delivered> {
        let mut failures = Vec::new();
        for result in join_all(self.futures).await {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, msg))) => failures.push(format!("{} : {e}", rdkafka::Message::topic(&msg))),
                Err(_) => failures.push("producer dropped the delivery report".to_owned()),
            }
        }
        if let Some(first) = failures.first() {
            return Err(Error::Delivery {
                service: self.service,
                reason: format!("{} of the batch's records were not acknowledged; first: {first}", failures.len()),
            });
        }
        Ok(self.delivered)
    }
}

/// Counts of one delivery.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub records: usize,
    pub dead_letters: usize,
}

impl Deliverer {
    pub fn new(cfg: &KafkaConfig, service: &str, dead_letter_topic: &str) -> Result<Self> {
        let producer: FutureProducer =
            client::producer(cfg)?.create().map_err(|e| Error::kafka(format!("{service}: creating producer"), e))?;
        Ok(Self { producer, service: service.to_owned(), dead_letter_topic: dead_letter_topic.to_owned() })
    }

    /// The underlying producer.
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Produces every record and dead letter of `output` and returns when all
    /// are acknowledged; fails if any is not.
    pub async fn deliver(&self, output: &Output) -> Result<Delivered> {
        self.start(output).await?.wait().await
    }

    /// Enqueues every record and dead letter of `output` (in order) and
    /// returns without waiting for their acknowledgements.
    pub async fn start(&self, output: &Output) -> Result<Pending> {
        let mut pending = Vec::with_capacity(output.records.len() + output.dead_letters.len());
        for r in &output.records {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header { key: k, value: Some(v) });
            }
            let mut rec = FutureRecord::to(&r.topic).payload(&r.payload).headers(headers);
            if let Some(k) = &r.key {
                rec = rec.key(k);
            }
            if let Some(p) = r.partition {
                rec = rec.partition(p);
            }
            pending.push(self.enqueue(rec).await?);
        }
        for dl in &output.dead_letters {
            let mut headers = OwnedHeaders::new();
            for (k, v) in dead_letter::headers(&self.service, dl) {
                headers = headers.insert(Header { key: k, value: Some(&v) });
            }
            let bytes = dead_letter::payload(dl).0.to_vec();
            let mut rec = FutureRecord::to(&self.dead_letter_topic).payload(&bytes).headers(headers);
            if let Some(k) = &dl.key {
                rec = rec.key(k);
            }
            pending.push(self.enqueue(rec).await?);
            metrics::counter!("psg_dead_letters_total", "service" => self.service.clone(), "kind" => dl.kind)
                .increment(1);
            tracing::warn!(
                service = %self.service,
                source.topic = %dl.source_topic,
                source.partition = dl.source_partition,
                source.offset = dl.source_offset,
                line = dl.line,
                kind = dl.kind,
                reason = %dl.reason,
                "dead-lettered"
            );
        }
        metrics::counter!("psg_records_produced_total", "service" => self.service.clone())
            .increment(output.records.len() as u64);
        Ok(Pending {
            futures: pending,
            service: self.service.clone(),
            delivered: Delivered { records: output.records.len(), dead_letters: output.dead_letters.len() },
        })
    }
    /// Enqueues one record, waiting while librdkafka's queue is full.
    async fn enqueue<'a>(
        &self,
        mut rec: FutureRecord<'a, Vec<u8>, Vec<u8>>,
    ) -> Result<rdkafka::producer::DeliveryFuture> {
        loop {
            match self.producer.send_result(rec) {
                Ok(fut) => return Ok(fut),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(Error::kafka(format!("{}: producing", self.service), e)),
            }
        }
    }

    /// Waits up to `timeout` for everything in flight.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(timeout).map_err(|e| Error::kafka(format!("{}: flushing producer", self.service), e))
    }
}
