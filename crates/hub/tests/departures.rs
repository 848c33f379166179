//! A departure from every room at once (a quit, a lost connection) is news once per
//! member: the first room a member shares with the one who left tells it as news, the
//! others `again`, whichever member's encoding was shared.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parley_hub::{Batch, Command, Event, HubHandle, LeaveReason, Limits, Outbox, RequestId, Session, Wire};

/// Departures only, one line each; the encoding is shared by every session.
struct Departures;

impl Wire for Departures {
    fn cache_slot(&self) -> Option<usize> {
        Some(0)
    }

    fn encode(&self, event: &Event, out: &mut BytesMut) {
        if let Event::Left { room, nick, reason: LeaveReason::Quit, again, .. } = event {
            let news = if *again { "again" } else { "news" };
            out.extend_from_slice(format!("{nick} quit {room} {news}\n").as_bytes());
        }
    }
}

struct Member {
    session: Session,
    outbox: Arc<Outbox>,
}

impl Member {
    async fn connect(hub: &HubHandle, nick: &str, rooms: &[&str]) -> Member {
        let outbox = Arc::new(Outbox::new(Departures, 1 << 20));
        let session = hub.connect(nick, None, RequestId(0), outbox.clone()).await.expect("registers");
        for room in rooms {
            let join = Command::Join { room: (*room).to_owned(), exclusive: false, key: None };
            session.send(RequestId(1), join).await.expect("sent");
        }
        Member { session, outbox }
    }

    /// The departures told so far, waiting until there are `count`.
    async fn departures(&self, count: usize) -> Vec<String> {
        let mut lines = Vec::new();
        let mut buf = BytesMut::new();
        while lines.len() < count {
            let batch = tokio::time::timeout(Duration::from_secs(10), self.outbox.take(&mut buf)).await;
            assert!(matches!(batch, Ok(Batch::Bytes)), "departures in time: {lines:?}");
            lines.extend(String::from_utf8(buf.to_vec()).expect("UTF-8").lines().map(str::to_owned));
            buf.clear();
        }
        lines
    }
}

#[tokio::test]
async fn a_quit_is_news_once_to_each_member_then_again_in_every_other_room() {
    let (hub, _task) = parley_hub::spawn(Limits::default(), None).await.expect("starts");
    // Everyone is in the lobby; ann and bob share more rooms with max than cy does.
    let ann = Member::connect(&hub, "ann", &["a", "b"]).await;
    let bob = Member::connect(&hub, "bob", &["a", "b"]).await;
    let cy = Member::connect(&hub, "cy", &["b"]).await;
    for round in 0..2 {
        let max = Member::connect(&hub, "max", &["a", "b"]).await;
        max.session.quit(RequestId(2), None).await.expect("sent");
        let expected = ["max quit lobby news", "max quit a again", "max quit b again"];
        assert_eq!(ann.departures(3).await, expected, "round {round}");
        assert_eq!(bob.departures(3).await, expected, "round {round}");
        assert_eq!(cy.departures(2).await, ["max quit lobby news", "max quit b again"], "round {round}");
    }
}
