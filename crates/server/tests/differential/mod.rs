//! The IRC differential test's parts: the scripts' format ([`script`]), playing them
//! against a server ([`run`]), what is compared of a line ([`normalise`]), the
//! reference server ([`inspircd`]) and the report ([`report`]).

// Items are `pub` for the test crate's root, which is all that reaches them.
#![allow(unreachable_pub)]

pub mod inspircd;
pub mod normalise;
pub mod report;
pub mod run;
pub mod script;
