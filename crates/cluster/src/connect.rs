//! The node's one connection to NATS, with the timeouts that keep a node cut off from
//! the cluster from hanging.

use std::time::Duration;

use async_nats::jetstream;

/// How long JetStream API requests and publish acknowledgements may take. Together with
/// the retry inside [`crate::RoomLog`]'s publish bound it keeps a failed publish under
/// 5 s.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the client pings its server. The default (a minute, two missed) would take
/// two minutes to notice a server gone silent without closing the connection (a cut
/// cable); at 2 s the link is declared down within about 6 s and the client moves to
/// another server. A killed server's connections close at once anyway.
const PING_INTERVAL: Duration = Duration::from_secs(2);

/// A node's connection to the NATS cluster and its JetStream context.
#[derive(Clone, Debug)]
pub struct Link {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
}

impl Link {
    /// True while connected to some server of the cluster.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The underlying client, for tests and diagnostics.
    #[must_use]
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

/// Connects to the first reachable server of `servers` (`nats://host:port`), named
/// `name` in the servers' connection lists. Once connected, the client reconnects on its
/// own, forever, to any server of the list (or that the cluster announces), with a
/// backoff of at most 4 s: a node survives a NATS restart without restarting itself.
///
/// # Errors
///
/// [`crate::LogError::Unavailable`] when no server answers at start.
pub async fn connect(servers: &[String], name: &str) -> Result<Link, crate::LogError> {
    let addrs: Vec<async_nats::ServerAddr> = servers
        .iter()
        .map(|s| s.parse().map_err(|e| crate::LogError::JetStream(format!("server address {s:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(REQUEST_TIMEOUT))
        .ping_interval(PING_INTERVAL)
        .max_reconnects(None)
        .connect(addrs)
        .await
        .map_err(|e| {
            tracing::warn!("cannot connect to NATS: {e}");
            crate::LogError::Unavailable
        })?;
    let js = jetstream::ContextBuilder::new().timeout(REQUEST_TIMEOUT).build(client.clone());
    Ok(Link { client, js })
}

/// How long opening a stream may keep failing before a node gives up: a stream just
/// created by another node has no leader for a moment, and its info request then times
/// out or the create reports it exists.
const OPEN_WITHIN: Duration = Duration::from_secs(10);

/// The stream behind the key-value bucket `bucket` (`KV_<bucket>`, `$KV.<bucket>.<key>`,
/// one value per key), as the client library sets one up, with deletes allowed; made
/// here, with the stream first, because nats-server 2.9 has no per-key settings.
pub(crate) fn bucket_config(bucket: &str, replicas: usize) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// Gets or creates the stream `config` names, trying again while JetStream is settling.
pub(crate) async fn open_stream(
    link: &Link,
    config: jetstream::stream::Config,
) -> Result<jetstream::stream::Stream, String> {
    let deadline = std::time::Instant::now() + OPEN_WITHIN;
    loop {
        match link.js.get_or_create_stream(config.clone()).await {
            Ok(stream) => return Ok(stream),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!(stream = config.name, "opening the stream: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(format!("stream {}: {e}", config.name)),
        }
    }
}
