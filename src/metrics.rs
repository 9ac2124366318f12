//! Prometheus metrics: the registry of one server, the handles that count into it, and its text for a scrape.

use std::{future::Future, sync::Arc, time::Duration};

use axum::http::{Method, StatusCode};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, prometheus_text},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::Histogram,
        info::Info,
    },
    registry::{Registry, Unit},
};
use sqlx::PgPool;

use crate::domain::batch::BatchCounts;

/// The `Content-Type` of [`Metrics::encode`]: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// The `result` labels of a sweeper pass.
const SWEEP_RESULTS: [&str; 3] = ["swept", "skipped", "failed"];

/// The `outcome` labels of an order batch's rows, as the batch's `counts` name them.
const BATCH_ROW_OUTCOMES: [&str; 3] = ["created", "replayed", "failed"];

/// Upper bounds of the request-duration buckets, in seconds: Prometheus's defaults, 5 ms to 10 s.
const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How one pass of the idempotency-key sweeper ended, as `idempotency_sweeper_runs_total{result}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweeperRun {
    /// This server swept and deleted `deleted` expired keys (`result="swept"`).
    Swept { deleted: u64 },
    /// Another server held the sweeper lock (`result="skipped"`).
    Skipped,
    /// The pass failed, e.g. the database could not be reached (`result="failed"`).
    Failed,
}

/// What a keyed POST or PATCH came to in the exactly-once layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The endpoint ran and its outcome was stored with the key.
    Executed,
    /// A live key answered with its stored response.
    Replayed,
    /// A live key was reused with another request: 422.
    Mismatched,
    /// The key was busy with another request past the wait or lock timeout: 409.
    Conflicted,
    /// An expired key row was taken over by a new run; counted besides `Executed`.
    ExpiredRetaken,
}

impl Outcome {
    const ALL: [Self; 5] = [
        Self::Executed,
        Self::Replayed,
        Self::Mismatched,
        Self::Conflicted,
        Self::ExpiredRetaken,
    ];

    /// Its `outcome` label, which the request's response line also carries (`idempotency`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Executed => "executed",
            Self::Replayed => "replayed",
            Self::Mismatched => "mismatched",
            Self::Conflicted => "conflicted",
            Self::ExpiredRetaken => "expired_retaken",
        }
    }
}

// The label sets, one per family: a field's name is its label's name.

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SweepLabels {
    result: &'static str,
}

/// Orders a response says its handler created, read by the layer that counts them (`server::stack`).
///
/// A response extension rather than a count in the handler, so that an order is counted once it committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrdersCreated(pub u64);

/// The metrics of one server; cloning shares them.
///
/// Each owns its registry rather than a global one, so that servers in one process (the tests) count apart.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    idempotency_requests: Family<OutcomeLabels, Counter>,
    sweeper_runs: Family<SweepLabels, Counter>,
    sweeper_deleted_keys: Counter,
    pool_waiters: Gauge,
    orders_created: Counter,
    batch_rows: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    /// Registers every metric, and the gauges of `pool`, which are read at each scrape.
    pub fn new(pool: &PgPool) -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP responses by method, route template and status",
            http_requests.clone(),
        );
        let http_request_duration: Family<_, _, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "Time from the request's arrival to its response headers, by method and route template",
            Unit::Seconds,
            http_request_duration.clone(),
        );
        let idempotency_requests = Family::default();
        registry.register(
            "idempotency_requests",
            "Keyed POST and PATCH requests by outcome: executed, replayed, mismatched, conflicted, expired_retaken",
            idempotency_requests.clone(),
        );
        let sweeper_runs = Family::default();
        registry.register(
            "idempotency_sweeper_runs",
            "Passes of the idempotency-key sweeper by result: swept, skipped (another server holds the lock), failed",
            sweeper_runs.clone(),
        );
        let sweeper_deleted_keys = Counter::default();
        registry.register(
            "idempotency_sweeper_deleted_keys",
            "Expired idempotency keys the sweeper deleted",
            sweeper_deleted_keys.clone(),
        );
        let pool_waiters = Gauge::default();
        registry.register(
            "db_pool_waiters",
            "Requests waiting for a pooled connection: to authenticate, to look up a key, or to begin a transaction",
            pool_waiters.clone(),
        );
        registry.register_collector(Box::new(PoolGauges(pool.clone())));
        let orders_created = Counter::default();
        registry.register(
            "orders_created",
            "Orders created, by POST /v1/orders and by order batch rows; replays create none",
            orders_created.clone(),
        );
        let batch_rows = Family::default();
        registry.register(
            "order_batch_rows",
            "Order batch rows taken, by outcome: created, replayed, failed (as the batch's counts)",
            batch_rows.clone(),
        );
        registry.register(
            "order_intake_build",
            "The running build: its version (a constant 1)",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register_collector(Box::new(ProcessSeries));
        // Series with a few known labels start at 0, so that a scraper sees them before their first event
        // and `rate()` has a start; HTTP series appear with their first request.
        for outcome in Outcome::ALL {
            idempotency_requests.get_or_create_owned(&OutcomeLabels {
                outcome: outcome.as_str(),
            });
        }
        for result in SWEEP_RESULTS {
            sweeper_runs.get_or_create_owned(&SweepLabels { result });
        }
        for outcome in BATCH_ROW_OUTCOMES {
            batch_rows.get_or_create_owned(&OutcomeLabels { outcome });
        }
        Self(Arc::new(Inner {
            registry,
            http_requests,
            http_request_duration,
            idempotency_requests,
            sweeper_runs,
            sweeper_deleted_keys,
            pool_waiters,
            orders_created,
            batch_rows,
        }))
    }

    /// Counts one response; `route` is the matched route template, `None` when no route matched.
    pub fn http_request(
        &self,
        method: &Method,
        route: Option<&str>,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let method = method_label(method);
        let route = route.unwrap_or(UNMATCHED).to_owned();
        self.0
            .http_request_duration
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.0
            .http_requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status: status.as_u16(),
            })
            .inc();
    }

    /// Awaits `checkout` (taking a connection from the pool), counted in `db_pool_waiters` until it has one.
    ///
    /// sqlx does not count the tasks waiting for a connection; the request paths that take one count themselves.
    pub async fn waiting_for<T>(&self, checkout: impl Future<Output = T>) -> T {
        let _waiting = Waiting::new(&self.0.pool_waiters);
        checkout.await
    }

    /// Counts one outcome of the exactly-once layer.
    pub fn idempotency(&self, outcome: Outcome) {
        self.0
            .idempotency_requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Counts one pass of the sweeper, and the keys it deleted.
    pub fn sweeper_run(&self, run: SweeperRun) {
        let [swept, skipped, failed] = SWEEP_RESULTS;
        let result = match run {
            SweeperRun::Swept { deleted } => {
                self.0.sweeper_deleted_keys.inc_by(deleted);
                swept
            }
            SweeperRun::Skipped => skipped,
            SweeperRun::Failed => failed,
        };
        self.0
            .sweeper_runs
            .get_or_create(&SweepLabels { result })
            .inc();
    }

    /// Counts orders that committed.
    pub fn orders_created(&self, OrdersCreated(orders): OrdersCreated) {
        self.0.orders_created.inc_by(orders);
    }

    /// Counts the rows of an order batch's chunk that committed, and the orders they created.
    pub fn batch_rows(&self, counts: &BatchCounts) {
        let [created, replayed, failed] = BATCH_ROW_OUTCOMES;
        for (outcome, rows) in [
            (created, counts.created),
            (replayed, counts.replayed),
            (failed, counts.failed),
        ] {
            let rows = u64::try_from(rows).unwrap_or_default();
            self.0
                .batch_rows
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(rows);
        }
        self.orders_created(OrdersCreated(
            u64::try_from(counts.created).unwrap_or_default(),
        ));
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.0.registry)?;
        Ok(text)
    }
}

/// The method as a label; any method outside the standard ones is `other`, so clients cannot mint new series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// One task in `db_pool_waiters`, for as long as it lives: a request that gives up waiting leaves the count too.
struct Waiting<'a>(&'a Gauge);

impl<'a> Waiting<'a> {
    fn new(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The database pool as gauges, read from the pool when scraped rather than kept up to date.
///
/// sqlx does not say how many tasks wait for a connection; a pool at its maximum with no idle connection is
/// the sign of waiting, and a wait past the acquire timeout shows as a 503 in `http_requests_total`.
#[derive(Debug)]
struct PoolGauges(PgPool);

impl Collector for PoolGauges {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let pool = &self.0;
        // Help texts end with a full stop here, as `Registry::register` adds one to the others.
        let gauges = [
            (
                "db_pool_connections",
                "Connections the pool holds, idle or in use.",
                i64::from(pool.size()),
            ),
            (
                "db_pool_idle_connections",
                "Connections the pool holds that no request uses.",
                i64::try_from(pool.num_idle()).unwrap_or(i64::MAX),
            ),
            (
                "db_pool_max_connections",
                "The most connections the pool opens.",
                i64::from(pool.options().get_max_connections()),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// The process series client libraries export (`process_cpu_seconds_total` and the rest), read at each scrape.
///
/// metrics-process reads them from the platform; this only encodes its snapshot, the series it could read.
#[derive(Debug)]
struct ProcessSeries;

impl Collector for ProcessSeries {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let process = metrics_process::collector::collect();
        if let Some(seconds) = process.cpu_seconds_total {
            let counter = ConstCounter::new(seconds);
            counter.encode(encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent in seconds.",
                Some(&Unit::Seconds),
                counter.metric_type(),
            )?)?;
        }
        // Help texts end with a full stop here, as `Registry::register` adds one to the others.
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                process.resident_memory_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                process.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors (0: unlimited).",
                process.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds.",
                process.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
