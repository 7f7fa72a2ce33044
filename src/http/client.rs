//! Who is asking: the client's address (the TCP peer, or what a trusted proxy says), and the
//! general rate limit per client address and per signed-in user.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

use crate::auth::throttle::{ClientAddress, KeyedLimit};
use crate::limits::{Limits, log_refusal};
use crate::models::ids::UserId;

/// The client's address: from `CLIENT_IP_HEADER` when configured (the entry
/// `TRUSTED_PROXY_HOPS` from the right, as each proxy appends the address it saw), otherwise
/// the TCP peer. A header that is missing or malformed falls back to the peer.
pub fn address(parts: &Parts, limits: &Limits) -> ClientAddress {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let forwarded = limits.client_ip_header.as_deref().and_then(|name| {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let index = values.len().checked_sub(limits.trusted_proxy_hops.max(1))?;
        parse_address(values[index])
    });
    ClientAddress(forwarded.or(peer))
}

/// An address as proxies write it: `203.0.113.7`, `203.0.113.7:4711`, `[2001:db8::1]:80`.
fn parse_address(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|address| address.ip()))
}

/// Requests per client address and per signed-in user.
#[derive(Debug)]
pub struct RequestRates {
    addresses: KeyedLimit<IpAddr>,
    users: KeyedLimit<UserId>,
}

impl RequestRates {
    /// The rates the limits configure (off when `RATE_LIMIT_BURST` is 0).
    pub fn new(limits: &Limits) -> Self {
        let period = match limits.rate_limit_per_second {
            0 => Duration::ZERO,
            n => Duration::from_secs(1) / n,
        };
        Self {
            addresses: KeyedLimit::new(limits.rate_limit_burst, period),
            users: KeyedLimit::new(limits.rate_limit_burst, period),
        }
    }

    /// Takes a request from the address's bucket; when empty, the seconds to wait.
    pub fn from_address(&self, address: ClientAddress) -> Result<(), u64> {
        let Some(address) = address.0.map(crate::auth::throttle::counted_as) else {
            return Ok(());
        };
        self.addresses.check(&address).inspect_err(|_| {
            log_refusal("rate_limit_address", &address.to_string());
        })
    }

    /// Takes a request from the user's bucket; when empty, the seconds to wait.
    pub fn from_user(&self, user: UserId) -> Result<(), u64> {
        self.users.check(&user).inspect_err(|_| {
            log_refusal("rate_limit_user", &user.to_string());
        })
    }

    /// Forgets idle keys.
    pub fn forget_idle(&self) {
        self.addresses.forget_idle();
        self.users.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(forwarded: Option<&str>) -> Parts {
        let mut request = Request::builder().uri("/graphql");
        if let Some(value) = forwarded {
            request = request.header("x-forwarded-for", value);
        }
        let mut parts = request.body(()).unwrap().into_parts().0;
        parts
            .extensions
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 5000))));
        parts
    }

    #[test]
    fn the_proxy_header_is_trusted_only_when_configured() {
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        let mut limits = Limits::default();
        let spoofed = parts(Some("198.51.100.1, 203.0.113.7"));
        assert_eq!(address(&spoofed, &limits).0, peer);
        limits.client_ip_header = Some("X-Forwarded-For".into());
        assert_eq!(
            address(&spoofed, &limits).0,
            Some(IpAddr::from([203, 0, 113, 7])),
            "the entry the trusted proxy appended, not the client's own claim"
        );
        limits.trusted_proxy_hops = 2;
        assert_eq!(
            address(&spoofed, &limits).0,
            Some(IpAddr::from([198, 51, 100, 1]))
        );
        limits.trusted_proxy_hops = 3;
        assert_eq!(address(&spoofed, &limits).0, peer, "too few entries");
        assert_eq!(address(&parts(Some("garbage")), &limits).0, peer);
    }
}
