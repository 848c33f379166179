//! Which client addresses count as one party: the rule of per-address limits, and one
//! that bans can share.
//!
//! An IPv4 address is itself. An IPv6 address counts as its /64: a /64 is what one
//! home, phone or server is given, and whoever has one can pick any of its 2^64
//! addresses, so counting them apart would make a per-address limit worthless. An
//! IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, how a dual-stack listener sees an IPv4
//! client) is its IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The bits of an IPv6 address that name its /64.
const PREFIX_64: u128 = !((1 << 64) - 1);

/// A client address as per-address rules count it: one IPv4 address, or one IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    /// One IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 /64, as its first address (the last 64 bits zero).
    V6(Ipv6Addr),
}

impl Network {
    /// The network `ip` counts as.
    #[must_use]
    pub fn of(ip: IpAddr) -> Network {
        match ip {
            IpAddr::V4(v4) => Network::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Network::V4(v4),
                None => Network::V6(Ipv6Addr::from(u128::from(v6) & PREFIX_64)),
            },
        }
    }

    /// Whether `ip` counts as this network.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        Network::of(ip) == *self
    }
}

impl From<IpAddr> for Network {
    fn from(ip: IpAddr) -> Network {
        Network::of(ip)
    }
}

/// `192.0.2.1`, or `2001:db8:1:2::/64`.
impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Network::V4(v4) => write!(f, "{v4}"),
            Network::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn an_ipv4_address_is_itself() {
        assert_eq!(Network::of(ip("192.0.2.1")), Network::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_ne!(Network::of(ip("192.0.2.1")), Network::of(ip("192.0.2.2")));
        assert_eq!(Network::of(ip("192.0.2.1")).to_string(), "192.0.2.1");
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        assert_eq!(Network::of(ip("::ffff:192.0.2.1")), Network::of(ip("192.0.2.1")));
        assert_eq!(Network::of(ip("::ffff:127.0.0.1")).to_string(), "127.0.0.1");
        assert!(Network::of(ip("127.0.0.1")).contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn every_address_of_a_64_is_one_network() {
        let home = Network::of(ip("2001:db8:1:2::1"));
        for other in ["2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2:abcd::9"] {
            assert_eq!(Network::of(ip(other)), home, "{other}");
            assert!(home.contains(ip(other)));
        }
        assert_ne!(Network::of(ip("2001:db8:1:3::1")), home, "the next /64 is someone else");
        assert_eq!(home.to_string(), "2001:db8:1:2::/64");
        assert_eq!(Network::of(ip("::1")).to_string(), "::/64");
    }

    #[test]
    fn ipv6_and_ipv4_never_meet() {
        // 192.0.2.1 and the /64 whose first bits happen to spell it are not the same party.
        assert_ne!(Network::of(ip("c000:201::")), Network::of(ip("192.0.2.1")));
    }
}
