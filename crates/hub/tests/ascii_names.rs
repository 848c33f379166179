//! Names under `[names] casemapping = "ascii"`: today's IRC rules. In a process of its
//! own, since the mapping is fixed once per process.

use parley_hub::{set_case_mapping, CaseMapping, HubError, NameRule, Nick, RoomName};

#[test]
fn ascii_mapping_keeps_names_ascii() {
    assert_eq!(set_case_mapping(CaseMapping::Ascii), Ok(()));
    assert!(Nick::parse("Alice", 32).is_ok());
    assert_eq!(Nick::parse("Alice", 32).expect("valid"), Nick::parse("aLICE", 32).expect("valid"));
    for bad in ["José", "Zoë", "李雷", "\u{430}lice"] {
        assert!(
            matches!(Nick::parse(bad, 32), Err(HubError::InvalidNick { why: NameRule::Character(_), .. })),
            "{bad:?}"
        );
    }
    assert!(RoomName::parse("#Café", 32).is_err());
    assert_eq!(RoomName::parse("#Dev", 32).expect("valid").key(), "dev");
    // Without Unicode there are no look-alikes beyond the key itself.
    assert_eq!(Nick::parse("rnoon", 32).expect("valid").skeleton(), "rnoon");
}
