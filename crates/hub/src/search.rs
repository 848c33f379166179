//! What users type after `/search`: words to find, and filters (`from:NICK`, `in:ROOM`,
//! `before:DATE`, `after:DATE`, `page:N`). Parsed here, once for every gateway.

use chrono::{NaiveDate, TimeZone as _, Utc};

use crate::error::{HubError, SearchProblem};
use crate::event::Timestamp;
use crate::name::{Nick, RoomName};

/// Results per page.
pub(crate) const PAGE: usize = 20;

/// The last page one may ask for.
pub(crate) const MAX_PAGE: usize = 1000;

/// A parsed search query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    pub(crate) words: Vec<String>,
    pub(crate) from: Option<Nick>,
    pub(crate) room: Option<RoomName>,
    pub(crate) before: Option<Timestamp>,
    pub(crate) after: Option<Timestamp>,
    /// From 1.
    pub(crate) page: usize,
}

/// Midnight UTC at the start of `date` (`YYYY-MM-DD`).
fn day(filter: &'static str, date: &str) -> Result<Timestamp, HubError> {
    let bad = || HubError::BadSearch(SearchProblem::Date { filter, value: date.to_owned() });
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| bad())?;
    let midnight = day.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
    Ok(Utc.from_utc_datetime(&midnight))
}

impl Query {
    /// Reads a query; `before:DATE` means before that day began, `after:DATE` from that
    /// day on (days in UTC).
    pub(crate) fn parse(text: &str, max_nick: usize, max_room: usize) -> Result<Query, HubError> {
        let mut query = Query { words: Vec::new(), from: None, room: None, before: None, after: None, page: 1 };
        for token in text.split_whitespace() {
            match token.split_once(':') {
                Some(("from", nick)) => query.from = Some(Nick::parse(nick, max_nick)?),
                Some(("in", room)) => query.room = Some(RoomName::parse(room, max_room)?),
                Some(("before", date)) => query.before = Some(day("before", date)?),
                Some(("after", date)) => query.after = Some(day("after", date)?),
                Some(("page", n)) => {
                    query.page = n.parse().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| {
                        HubError::BadSearch(SearchProblem::Page { value: n.to_owned(), max: MAX_PAGE })
                    })?;
                }
                _ => query.words.push(token.to_owned()),
            }
        }
        if query.words.is_empty() {
            return Err(HubError::BadSearch(SearchProblem::NoWords));
        }
        Ok(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_filters_are_told_apart() {
        let q = Query::parse("deploy from:Ada in:#ops after:2026-11-01 before:2026-12-01 page:2 disk", 32, 32)
            .expect("parses");
        assert_eq!(q.words, ["deploy", "disk"]);
        assert_eq!(q.from.as_ref().map(Nick::as_str), Some("Ada"));
        assert_eq!(q.room.as_ref().map(RoomName::as_str), Some("ops"));
        assert_eq!(q.after.map(|t| t.to_rfc3339()), Some("2026-11-01T00:00:00+00:00".to_owned()));
        assert_eq!(q.before.map(|t| t.to_rfc3339()), Some("2026-12-01T00:00:00+00:00".to_owned()));
        assert_eq!(q.page, 2);
        // A colon in an ordinary word is an ordinary word.
        assert_eq!(Query::parse("error: 12:30", 32, 32).expect("parses").words, ["error:", "12:30"]);
    }

    #[test]
    fn bad_filters_are_explained() {
        for bad in ["from:Ada", "deploy after:yesterday", "deploy page:0", "deploy from:9lives", "deploy in:a/b"] {
            assert!(Query::parse(bad, 32, 32).is_err(), "{bad}");
        }
    }
}
