//! A message's metadata (the message it answers, client tags) as both stores keep it: a
//! JSON object in one nullable column, absent for a plain message, so that the rows of
//! the many messages without any cost nothing, and new fields need no migration.

use std::sync::Arc;

use parley_hub::{ClientTags, Meta};
use serde_json::{json, Map, Value};

/// The column's text for a message: `{"reply_to":41,"tags":[["name","value"]]}`,
/// either field left out when empty; `None` when there is nothing.
pub(crate) fn encode(meta: Option<&Meta>) -> Option<String> {
    let meta = meta?;
    let mut object = Map::new();
    if let Some(seq) = meta.reply_to {
        object.insert("reply_to".into(), json!(seq));
    }
    if !meta.tags.is_empty() {
        object.insert("tags".into(), json!(meta.tags.pairs()));
    }
    (!object.is_empty()).then(|| Value::Object(object).to_string())
}

/// The metadata a column holds, or why it cannot be read.
pub(crate) fn decode(text: Option<&str>) -> Result<Option<Arc<Meta>>, String> {
    let Some(text) = text else { return Ok(None) };
    let value: Value = serde_json::from_str(text).map_err(|e| format!("bad message metadata: {e}"))?;
    let reply_to = value.get("reply_to").and_then(Value::as_u64);
    let pairs: Vec<(String, String)> = match value.get("tags") {
        None => Vec::new(),
        Some(tags) => serde_json::from_value(tags.clone()).map_err(|e| format!("bad message tags: {e}"))?,
    };
    let tags = ClientTags::new(pairs).map_err(|e| format!("bad message tags: {e}"))?;
    Ok(Meta { reply_to, tags }.shared())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_plain_messages_keep_none() {
        assert_eq!(encode(None), None);
        assert_eq!(encode(Some(&Meta::default())), None);
        let tags = ClientTags::new(vec![("example.com/x".into(), "a;b c".into())]).expect("valid");
        let meta = Meta { reply_to: Some(41), tags };
        let text = encode(Some(&meta)).expect("kept");
        assert_eq!(text, r#"{"reply_to":41,"tags":[["example.com/x","a;b c"]]}"#);
        assert_eq!(decode(Some(&text)).expect("reads").as_deref(), Some(&meta));
        assert_eq!(decode(None).expect("reads"), None);
        assert!(decode(Some("{")).is_err());
        assert!(decode(Some(r#"{"tags":[["bad name","v"]]}"#)).is_err());
    }
}
