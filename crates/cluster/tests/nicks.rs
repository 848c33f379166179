//! The nick registry on a real 3-server NATS cluster: one winner among a thousand
//! racing claims from two nodes, releases only by the holder, and leases that age out
//! unless refreshed.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parley_cluster::testing::TestCluster;
use parley_cluster::{HubClaims, NickConfig, NickError, NickRegistry};
use parley_hub::NickClaims;
use support::{eventually, link};

async fn registry(cluster: &TestCluster, server: usize, node: &str, lease: Duration) -> Arc<NickRegistry> {
    let link = link(cluster, server, node).await;
    let mut config = NickConfig::new(node);
    config.lease = lease;
    NickRegistry::open(&link, config).await.expect("opens the registry")
}

/// 1,000 claims of one nick at once, half from a node on server 0, half from a node on
/// server 2: exactly one wins and the rest are told it is taken.
async fn race(a: &Arc<NickRegistry>, b: &Arc<NickRegistry>, key: &str) -> Vec<(usize, Result<(), NickError>)> {
    let mut claims = Vec::new();
    for n in 0..1000 {
        let registry = Arc::clone(if n % 2 == 0 { a } else { b });
        let key = key.to_owned();
        claims.push(tokio::spawn(async move { (n % 2, registry.claim(&key).await.map(drop)) }));
    }
    let mut outcomes = Vec::new();
    for claim in claims {
        outcomes.push(claim.await.expect("the claim ends"));
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_a_thousand_racing_claims_wins_and_only_the_holder_releases() {
    support::trace();
    let Some(cluster) = TestCluster::start().await else { return };
    let a = registry(&cluster, 0, "node-a", Duration::from_secs(30)).await;
    let b = registry(&cluster, 2, "node-b", Duration::from_secs(30)).await;
    let key = "ålice";
    for round in 0..2 {
        let outcomes = race(&a, &b, key).await;
        let winners: Vec<usize> = outcomes.iter().filter(|(_, r)| r.is_ok()).map(|(node, _)| *node).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one claim wins");
        assert!(
            outcomes.iter().all(|(_, r)| matches!(r, Ok(()) | Err(NickError::Taken))),
            "round {round}: the others are told it is taken: {:?}",
            outcomes.iter().find(|(_, r)| !matches!(r, Ok(()) | Err(NickError::Taken)))
        );
        let (holder, other, name) = if winners[0] == 0 { (&a, &b, "node-a") } else { (&b, &a, "node-b") };
        assert_eq!(a.holder(key).await.expect("reads").as_deref(), Some(name));
        assert!(holder.holds(key).await && !other.holds(key).await);
        assert_eq!(other.release(key).await, Err(NickError::NotHeld), "a node that does not hold it cannot release it");
        assert_eq!(b.holder(key).await.expect("reads").as_deref(), Some(name), "still held");
        assert_eq!(holder.release(key).await, Ok(()));
        assert_eq!(holder.release(key).await, Err(NickError::NotHeld), "released once");
        // Released, the nick is free again: the next round races for it afresh.
        assert_eq!(a.holder(key).await.expect("reads"), None);
    }
    // Keys in any script are keys.
    a.claim("日本").await.expect("claims");
    assert_eq!(b.claim("日本").await, Err(NickError::Taken));
    b.claim("日本語").await.expect("another key");
}

/// With a 2 s lease: a claim nobody refreshes is gone within the lease (and slack),
/// and its node learns it lost it; a claim refreshed by its node's keep-alive outlives
/// several leases; a node whose claim aged out and was taken cannot release the new
/// holder's claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_live_by_their_leases() {
    support::trace();
    let Some(cluster) = TestCluster::start().await else { return };
    let lease = Duration::from_secs(2);
    let kept = registry(&cluster, 0, "kept", lease).await;
    let dead = registry(&cluster, 1, "dead", lease).await;
    let mut lost = kept.keep_alive();
    kept.claim("carol").await.expect("claims");
    let claimed = Instant::now();
    dead.claim("bob").await.expect("claims");
    eventually(lease + Duration::from_secs(3), "an unrefreshed claim ages out", || {
        let dead = Arc::clone(&dead);
        async move { dead.holder("bob").await.expect("reads").is_none() }
    })
    .await;
    assert!(claimed.elapsed() >= lease - Duration::from_millis(200), "not before its lease: {:?}", claimed.elapsed());
    // Three leases on, the refreshed claim is still there.
    while claimed.elapsed() < lease * 3 {
        assert_eq!(kept.holder("carol").await.expect("reads").as_deref(), Some("kept"), "refreshed, it stays");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(lost.try_recv().is_err(), "the kept node lost nothing");
    // The aged-out nick is free: another node takes it, and the node that held it
    // neither refreshes it back nor releases the new holder's claim.
    kept.claim("bob").await.expect("claims the aged-out nick");
    let refreshed = dead.refresh().await;
    assert_eq!(refreshed.lost, vec!["bob".to_owned()], "the dead node learns it lost it");
    assert_eq!(dead.release("bob").await, Err(NickError::NotHeld));
    assert_eq!(kept.holder("bob").await.expect("reads").as_deref(), Some("kept"));

    // A claim that ages out while its node still thinks it holds it (no refresh ran):
    // the stale release deletes nothing of the new holder's.
    dead.claim("dave").await.expect("claims");
    eventually(lease + Duration::from_secs(3), "dave ages out", || {
        let dead = Arc::clone(&dead);
        async move { dead.holder("dave").await.expect("reads").is_none() }
    })
    .await;
    kept.claim("dave").await.expect("claims");
    assert_eq!(dead.release("dave").await, Err(NickError::NotHeld));
    assert_eq!(kept.holder("dave").await.expect("reads").as_deref(), Some("kept"), "the new claim stays");
}

/// A refresh of thousands of claims is one pipelined pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_claims_refresh_in_one_pass() {
    support::trace();
    let Some(cluster) = TestCluster::start().await else { return };
    let node = registry(&cluster, 0, "busy", Duration::from_secs(30)).await;
    let mut claims = Vec::new();
    for n in 0..3000 {
        let node = Arc::clone(&node);
        claims.push(tokio::spawn(async move { node.claim(&format!("nick{n}")).await }));
    }
    for claim in claims {
        claim.await.expect("ends").expect("claims");
    }
    let started = Instant::now();
    let refreshed = node.refresh().await;
    let took = started.elapsed();
    eprintln!("refreshing 3,000 claims (3 replicas): {took:?}");
    assert_eq!(refreshed.kept, 3000);
    assert!(refreshed.lost.is_empty() && refreshed.failed == 0);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// The registry as the hub asks it: of 1,000 claims of one key at once, half through
/// each of two nodes' adapters on different servers, exactly one is granted and the
/// rest are told it is taken (not an error); a release followed at once by a claim of
/// the same key on the same node is granted (the claim waits for the release); the
/// other node is granted the key once it is released; with every server down a claim
/// is an error, within a bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubs_claims_grant_one_of_a_thousand() {
    support::trace();
    let Some(cluster) = TestCluster::start().await else { return };
    let a = registry(&cluster, 0, "node-a", Duration::from_secs(30)).await;
    let b = registry(&cluster, 2, "node-b", Duration::from_secs(30)).await;
    let hub_nicks = HubClaims::for_hub(&a);
    assert_eq!(hub_nicks.node, "node-a");
    let adapters: [Arc<dyn NickClaims>; 2] = [hub_nicks.claims, Arc::new(HubClaims::new(Arc::clone(&b)))];
    let key = "carol";
    let started = Instant::now();
    let mut claims = Vec::new();
    for n in 0..1000 {
        let claim = adapters[n % 2].claim(key.to_owned());
        claims.push(tokio::spawn(async move { (n % 2, claim.await) }));
    }
    let mut granted = Vec::new();
    for claim in claims {
        match claim.await.expect("the claim ends") {
            (node, Ok(true)) => granted.push(node),
            (_, Ok(false)) => {}
            (_, Err(e)) => panic!("a claim failed: {e}"),
        }
    }
    println!("1,000 racing claims through the adapters: {:?}", started.elapsed());
    assert_eq!(granted.len(), 1, "exactly one claim is granted");
    let (holder, other, name) = if granted[0] == 0 { (0, 1, "node-a") } else { (1, 0, "node-b") };
    assert_eq!(a.holder(key).await.expect("reads").as_deref(), Some(name));
    // Released and claimed again at once on the same node: granted, not refused by the
    // node's own claim still being released.
    adapters[holder].release(key.to_owned());
    assert_eq!(adapters[holder].claim(key.to_owned()).await, Ok(true));
    assert_eq!(adapters[other].claim(key.to_owned()).await, Ok(false));
    adapters[holder].release(key.to_owned());
    eventually(Duration::from_secs(10), "the release", || async { a.holder(key).await.ok() == Some(None) }).await;
    assert_eq!(adapters[other].claim(key.to_owned()).await, Ok(true), "free for the other node");
    // No server: an error, not a refusal.
    for server in 0..3 {
        cluster.kill(server);
    }
    let started = Instant::now();
    let refused = adapters[holder].claim("dave".to_owned()).await;
    println!("a claim with every server down failed after {:?}", started.elapsed());
    assert!(refused.is_err(), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "within a bound: {:?}", started.elapsed());
}
