//! `/metrics` on `metrics` listeners, in the Prometheus text format (encoded by
//! `prometheus-client`). Every value is an atomic written where it happens (the
//! listeners, the connection driver, the file store, and the hub's own
//! [`parley_hub::HubMetrics`]) and only read here: a scrape asks the hub nothing and
//! takes no lock the hub takes. No series is per user or per room; labels are the
//! gateway, the WebSocket endpoint and the direction of file bytes, a fixed handful.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parley_hub::{HistogramSnapshot, HubMetrics};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::config::ListenerKind;
use crate::files::FileStore;

/// Where a connection came in, or what its session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gateway {
    Line,
    Native,
    Irc,
    /// The native protocol over WebSocket (`/ws`).
    Ws,
    /// IRC over WebSocket (`/irc`).
    IrcWs,
    /// HTTP connections of `web` listeners.
    Http,
    /// HTTP connections of `metrics` listeners.
    Metrics,
}

impl Gateway {
    const ALL: [Gateway; 7] =
        [Gateway::Line, Gateway::Native, Gateway::Irc, Gateway::Ws, Gateway::IrcWs, Gateway::Http, Gateway::Metrics];

    fn label(self) -> &'static str {
        match self {
            Gateway::Line => "line",
            Gateway::Native => "native",
            Gateway::Irc => "irc",
            Gateway::Ws => "ws",
            Gateway::IrcWs => "irc_ws",
            Gateway::Http => "http",
            Gateway::Metrics => "metrics",
        }
    }

    /// The gateway of a listener's connections.
    pub(crate) fn of(kind: ListenerKind) -> Gateway {
        match kind {
            ListenerKind::Line => Gateway::Line,
            ListenerKind::Native => Gateway::Native,
            ListenerKind::Irc => Gateway::Irc,
            ListenerKind::Web => Gateway::Http,
            ListenerKind::Metrics => Gateway::Metrics,
        }
    }
}

/// One counter per gateway.
#[derive(Debug, Default)]
pub(crate) struct PerGateway([AtomicI64; 7]);

impl PerGateway {
    pub(crate) fn add(&self, gateway: Gateway, n: i64) {
        self.0[gateway as usize].fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self, gateway: Gateway) -> i64 {
        self.0[gateway as usize].load(Ordering::Relaxed)
    }
}

/// What the server counts outside the hub.
#[derive(Debug, Default)]
pub(crate) struct ServerMetrics {
    /// Connections open now, by the listener's gateway; a WebSocket counts as `http`
    /// here and as its endpoint in `sessions_by_gateway`.
    pub(crate) connections_open: PerGateway,
    /// Connections accepted since the start.
    pub(crate) connections: PerGateway,
    /// Connections refused at accept (server full, too many from one address).
    pub(crate) refused: AtomicU64,
    /// Registered sessions now, by what they speak.
    pub(crate) sessions_by_gateway: PerGateway,
    /// Units of client input (lines, frames, WebSocket messages) handled, by gateway:
    /// messages in.
    pub(crate) messages_in: PerGateway,
    /// Bytes written to clients, by gateway.
    pub(crate) bytes_out: PerGateway,
    /// Sessions disconnected for flooding.
    pub(crate) flood_disconnects: AtomicU64,
    /// Sessions disconnected for not answering the idle ping.
    pub(crate) ping_timeouts: AtomicU64,
    /// Connections parked now: quiet, with no task (`gateway::parking`).
    pub(crate) parked: AtomicI64,
}

impl ServerMetrics {
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Bytes of shared files moved, for `parley_file_bytes`.
#[derive(Debug, Default)]
pub(crate) struct FileBytes {
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
}

impl FileBytes {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// Everything `/metrics` shows, read at each scrape.
struct Exported {
    server: Arc<ServerMetrics>,
    hub: Arc<HubMetrics>,
    files: Option<Arc<FileStore>>,
}

/// A histogram as read at one scrape.
struct Histogram(HistogramSnapshot);

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        encoder.encode_histogram::<NoLabelSet>(self.0.sum, self.0.count, &self.0.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    ConstCounter::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn histogram(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: HistogramSnapshot) -> fmt::Result {
    Histogram(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Histogram)?)
}

fn per_gateway(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    values: &PerGateway,
    gateways: &[Gateway],
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for gateway in gateways {
        let value = values.get(*gateway);
        let labels = [("gateway", gateway.label())];
        let metric = family.encode_family(&labels)?;
        if metric_type == MetricType::Counter {
            ConstCounter::new(u64::try_from(value).unwrap_or(0)).encode(metric)?;
        } else {
            ConstGauge::new(value).encode(metric)?;
        }
    }
    Ok(())
}

impl fmt::Debug for Exported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exported").field("server", &self.server).field("hub", &self.hub).finish_non_exhaustive()
    }
}

impl Collector for Exported {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let (server, hub) = (&self.server, &self.hub);
        let all = &Gateway::ALL;
        let sessions = &[Gateway::Line, Gateway::Native, Gateway::Irc, Gateway::Ws, Gateway::IrcWs];
        let e = &mut encoder;
        per_gateway(
            e,
            "parley_connections",
            "Connections open, by gateway.",
            MetricType::Gauge,
            &server.connections_open,
            all,
        )?;
        per_gateway(
            e,
            "parley_connections_accepted",
            "Connections accepted, by gateway.",
            MetricType::Counter,
            &server.connections,
            all,
        )?;
        counter(
            e,
            "parley_connections_refused",
            "Connections refused at accept: server full, or too many from one address.",
            load(&server.refused),
        )?;
        per_gateway(
            e,
            "parley_gateway_sessions",
            "Registered sessions, by what they speak.",
            MetricType::Gauge,
            &server.sessions_by_gateway,
            sessions,
        )?;
        per_gateway(
            e,
            "parley_messages_in",
            "Units of client input handled (lines, frames, WebSocket messages), by gateway.",
            MetricType::Counter,
            &server.messages_in,
            sessions,
        )?;
        per_gateway(
            e,
            "parley_bytes_out",
            "Bytes written to clients, by gateway.",
            MetricType::Counter,
            &server.bytes_out,
            sessions,
        )?;
        gauge(
            e,
            "parley_connections_parked",
            "Connections parked: quiet, holding no task until their next input or event.",
            server.parked.load(Ordering::Relaxed),
        )?;
        gauge(
            e,
            "parley_sessions",
            "Sessions registered in the hub.",
            i64::try_from(load(&hub.sessions)).unwrap_or(i64::MAX),
        )?;
        counter(
            e,
            "parley_messages_accepted",
            "Chat messages accepted by the hub (rooms and private).",
            load(&hub.messages_accepted),
        )?;
        counter(
            e,
            "parley_deliveries",
            "Chat messages put into a recipient's send queue: messages out.",
            load(&hub.deliveries),
        )?;
        counter(
            e,
            "parley_slow_consumer_disconnects",
            "Sessions disconnected because their send queue overflowed.",
            load(&hub.slow_consumers),
        )?;
        counter(
            e,
            "parley_flood_disconnects",
            "Sessions disconnected for excess flood.",
            load(&server.flood_disconnects),
        )?;
        counter(
            e,
            "parley_ping_timeout_disconnects",
            "Sessions disconnected for not answering the idle ping.",
            load(&server.ping_timeouts),
        )?;
        counter(
            e,
            "parley_auth_failures",
            "Failed password checks (logins, SASL, hello with a password).",
            load(&hub.auth_failures),
        )?;
        histogram(
            e,
            "parley_fanout_seconds",
            "From a message's acceptance to its last delivery into a send queue, store commit included.",
            hub.fanout_seconds.snapshot(),
        )?;
        histogram(e, "parley_store_commit_messages", "Messages per history commit.", hub.commit_batch.snapshot())?;
        histogram(e, "parley_store_commit_seconds", "Time per history commit.", hub.commit_seconds.snapshot())?;
        histogram(e, "parley_search_seconds", "Time per search in the store.", hub.search_seconds.snapshot())?;
        let (received, sent) = self.files.as_ref().map_or((0, 0), |f| (load(&f.bytes.received), load(&f.bytes.sent)));
        let mut family = e.encode_descriptor(
            "parley_file_bytes",
            "Bytes of shared files received and sent.",
            None,
            MetricType::Counter,
        )?;
        for (direction, value) in [("received", received), ("sent", sent)] {
            ConstCounter::new(value).encode(family.encode_family(&[("direction", direction)])?)?;
        }
        Ok(())
    }
}

/// The registry `/metrics` encodes.
pub(crate) struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub(crate) fn new(server: Arc<ServerMetrics>, hub: Arc<HubMetrics>, files: Option<Arc<FileStore>>) -> Metrics {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exported { server, hub, files }));
        Metrics { registry }
    }

    /// The metrics now, in the Prometheus text format (version 0.0.4).
    pub(crate) fn scrape(&self) -> String {
        let mut text = String::with_capacity(8192);
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry) {
            tracing::warn!("cannot encode the metrics: {e}");
        }
        text
    }
}
