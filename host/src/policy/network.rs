//! Network grants: TCP connect, TCP bind and UDP by address (or CIDR) and
//! port range, and name lookup; and the check wasmtime-wasi's sockets ask
//! before each bind, connect or send. Depends on the reporter and on
//! wasmtime-wasi's socket-use type only, not on the bindings or the runtime.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;

use ipnet::IpNet;
use wasmtime_wasi::sockets::SocketAddrUse;

use crate::reporter::Reporter;

/// What a worker may do on the network. The default grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Where TCP sockets may connect.
    pub connect: Vec<AddrRule>,
    /// Where TCP sockets may bind (and listen).
    pub bind: Vec<AddrRule>,
    /// Where UDP sockets may bind, send and connect.
    pub udp: Vec<AddrRule>,
    /// Whether `wasi:sockets/ip-name-lookup` resolves names.
    pub lookup: bool,
}

/// What a socket address is being used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketUse {
    /// A TCP connect.
    Connect,
    /// A TCP bind or listen.
    Bind,
    /// Any UDP use.
    Udp,
}

impl SocketUse {
    /// The policy key that grants this use.
    pub fn rule(self) -> &'static str {
        match self {
            SocketUse::Connect => "network.connect",
            SocketUse::Bind => "network.bind",
            SocketUse::Udp => "network.udp",
        }
    }
}

impl NetworkPolicy {
    /// Whether `addr` may be used so. Binding to port 0 (any port) needs a
    /// rule covering the whole range, since the port is not known yet.
    pub fn allows(&self, addr: SocketAddr, use_: SocketUse) -> bool {
        let rules = match use_ {
            SocketUse::Connect => &self.connect,
            SocketUse::Bind => &self.bind,
            SocketUse::Udp => &self.udp,
        };
        rules.iter().any(|rule| rule.matches(addr))
    }

    /// Whether any TCP use is granted at all.
    pub fn any_tcp(&self) -> bool {
        !self.connect.is_empty() || !self.bind.is_empty()
    }
}

/// One grant: addresses (a CIDR block, or any) and a port range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrRule {
    /// The addresses; `None` is any address, IPv4 or IPv6.
    pub net: Option<IpNet>,
    /// The ports, inclusive.
    pub ports: RangeInclusive<u16>,
}

impl AddrRule {
    /// Whether the rule covers `addr` (IPv4-mapped IPv6 counts as IPv4).
    pub fn matches(&self, addr: SocketAddr) -> bool {
        let ip = match addr.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.net.is_none_or(|net| net.contains(&ip)) && self.ports.contains(&addr.port())
    }
}

impl std::fmt::Display for AddrRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.net {
            None => f.write_str("*")?,
            Some(IpNet::V6(net)) if net.prefix_len() == 128 => write!(f, "[{}]", net.addr())?,
            Some(IpNet::V6(net)) => write!(f, "[{}]/{}", net.addr(), net.prefix_len())?,
            Some(IpNet::V4(net)) if net.prefix_len() == 32 => write!(f, "{}", net.addr())?,
            Some(net) => write!(f, "{net}")?,
        }
        match (*self.ports.start(), *self.ports.end()) {
            (0, u16::MAX) => write!(f, ":*"),
            (lo, hi) if lo == hi => write!(f, ":{lo}"),
            (lo, hi) => write!(f, ":{lo}-{hi}"),
        }
    }
}

impl FromStr for AddrRule {
    type Err = String;

    /// `ADDR[/PREFIX]:PORT[-PORT]`, `[V6ADDR][/PREFIX]:PORTS` or `*:PORTS`
    /// (any address); PORTS may be `*` (any port).
    fn from_str(text: &str) -> Result<AddrRule, String> {
        let bad = || {
            format!(
                "`{text}` is not an address rule: write ADDR[/PREFIX]:PORT[-PORT], e.g. \
                 127.0.0.1:8080, 10.0.0.0/8:443, [::1]:8000-8100 or *:53"
            )
        };
        let (host, ports) = text.rsplit_once(':').ok_or_else(bad)?;
        let ports = match ports {
            "*" => 0..=u16::MAX,
            p => match p.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (
                        lo.parse().map_err(|_| bad())?,
                        hi.parse().map_err(|_| bad())?,
                    );
                    if lo > hi {
                        return Err(bad());
                    }
                    lo..=hi
                }
                None => {
                    let port = p.parse().map_err(|_| bad())?;
                    port..=port
                }
            },
        };
        let host = host.replace(['[', ']'], "");
        let net = if host == "*" {
            None
        } else if host.contains('/') {
            Some(IpNet::from_str(&host).map_err(|_| bad())?.trunc())
        } else {
            Some(IpNet::from(IpAddr::from_str(&host).map_err(|_| bad())?))
        };
        Ok(AddrRule { net, ports })
    }
}

/// Answers wasmtime-wasi's socket checks from the worker's network policy,
/// reporting each refusal. Implicit binds to the wildcard address (what a
/// connect or send does first) follow the grant of the connect or send.
pub(crate) fn network_allows(
    network: &NetworkPolicy,
    addr: SocketAddr,
    use_: SocketAddrUse,
    reporter: &Reporter,
) -> bool {
    use SocketAddrUse as U;
    let implicit = addr.ip().is_unspecified() && addr.port() == 0;
    let (allowed, rule, verb) = match use_ {
        U::TcpConnect => (
            network.allows(addr, SocketUse::Connect),
            SocketUse::Connect,
            "tcp connect",
        ),
        U::TcpBind if implicit && !network.connect.is_empty() => {
            (true, SocketUse::Connect, "tcp bind")
        }
        U::TcpBind | U::TcpListen => (
            network.allows(addr, SocketUse::Bind),
            SocketUse::Bind,
            "tcp listen",
        ),
        U::TcpAccept => (true, SocketUse::Bind, "tcp accept"),
        U::UdpBind if implicit && !network.udp.is_empty() => (true, SocketUse::Udp, "udp bind"),
        U::UdpBind | U::UdpSend | U::UdpReceive => {
            (network.allows(addr, SocketUse::Udp), SocketUse::Udp, "udp")
        }
    };
    if !allowed {
        reporter.deny(rule.rule(), format!("{verb} {addr}"));
    } else if matches!(use_, U::TcpListen) {
        // Checked just before the listen itself: near enough to announce.
        reporter.listening(addr);
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> AddrRule {
        text.parse().unwrap()
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_and_matches() {
        let r = rule("127.0.0.1:8000-8100");
        assert!(r.matches(addr("127.0.0.1:8000")));
        assert!(r.matches(addr("127.0.0.1:8100")));
        assert!(!r.matches(addr("127.0.0.1:8101")));
        assert!(!r.matches(addr("127.0.0.2:8000")));
        assert!(
            r.matches(addr("[::ffff:127.0.0.1]:8050")),
            "v4-mapped counts as v4"
        );
        let cidr = rule("10.0.0.0/8:443");
        assert!(cidr.matches(addr("10.1.2.3:443")));
        assert!(!cidr.matches(addr("11.0.0.1:443")));
        let v6 = rule("[::1]:*");
        assert!(v6.matches(addr("[::1]:1")));
        let any = rule("*:53");
        assert!(any.matches(addr("8.8.8.8:53")) && any.matches(addr("[2001:db8::1]:53")));
        assert!(!any.matches(addr("8.8.8.8:54")));
        for bad in [
            "127.0.0.1",
            "host:80",
            "1.2.3.4:90-80",
            "1.2.3.4:70000",
            "10.0.0.0/40:1",
        ] {
            assert!(bad.parse::<AddrRule>().is_err(), "{bad}");
        }
        assert_eq!(rule("10.0.0.0/8:443").to_string(), "10.0.0.0/8:443");
        assert_eq!(rule("[::1]:*").to_string(), "[::1]:*");
    }

    #[test]
    fn policy_checks_by_use() {
        let p = NetworkPolicy {
            connect: vec![rule("127.0.0.1:80")],
            ..NetworkPolicy::default()
        };
        assert!(p.allows(addr("127.0.0.1:80"), SocketUse::Connect));
        assert!(!p.allows(addr("127.0.0.1:80"), SocketUse::Bind));
        assert!(!NetworkPolicy::default().allows(addr("127.0.0.1:80"), SocketUse::Connect));
    }
}
