//! Keeps user-given URLs (webhooks, push endpoints) from reaching the operator's own network:
//! loopback, private, link-local, cloud metadata and other special addresses are refused unless
//! the operator allows their network. The check runs when the connection is made, on the
//! addresses the name resolves to then (so a name that resolves elsewhere later cannot get
//! around it), on IP literals before sending, and again on every redirect.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A target that must not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefused {
    #[error("{host} is a {kind} address; targets must be public")]
    Address { host: String, kind: &'static str },
    #[error("{host} resolves to {address}, a {kind} address; targets must be public")]
    Resolved {
        host: String,
        address: IpAddr,
        kind: &'static str,
    },
    #[error("`{0}` is not an http or https URL")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("URLs with a user name or password are not accepted")]
    Credentials,
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
}

/// Which special addresses the operator allows (e.g. `10.1.2.0/24` for an internal receiver,
/// `127.0.0.0/8` in tests). Empty by default: only public addresses.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    allowed: Vec<IpNet>,
}

const MAX_REDIRECTS: usize = 5;

impl TargetPolicy {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Why `ip` may not be reached, or None when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let kind = special_kind(ip)?;
        (!self.allowed.iter().any(|net| net.contains(&ip))).then_some(kind)
    }

    /// Checks what can be checked without resolving: scheme, credentials, IP-literal hosts.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), TargetRefused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetRefused::Scheme(url.scheme().to_string()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetRefused::Credentials);
        }
        let ip = match url.host() {
            None => return Err(TargetRefused::NoHost),
            Some(url::Host::Domain(_)) => return Ok(()),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        };
        match self.refusal(ip) {
            Some(kind) => Err(TargetRefused::Address {
                host: ip.to_string(),
                kind,
            }),
            None => Ok(()),
        }
    }

    /// Checks the addresses `host` resolved to: a name with any refused address is refused as a
    /// whole.
    pub fn check_resolved(
        &self,
        host: &str,
        addresses: &[SocketAddr],
    ) -> Result<(), TargetRefused> {
        for address in addresses {
            if let Some(kind) = self.refusal(address.ip()) {
                return Err(TargetRefused::Resolved {
                    host: host.to_string(),
                    address: address.ip(),
                    kind,
                });
            }
        }
        Ok(())
    }

    /// Resolves `host` and checks what it resolved to.
    pub async fn resolve(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        self.check_resolved(host, &addresses).map_err(|refused| {
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, refused)
        })?;
        Ok(addresses)
    }

    /// An HTTP client that enforces this policy at every connection and redirect.
    pub fn client(self: &Arc<Self>, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        let redirects = self.clone();
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .no_proxy()
            .user_agent(concat!("DonTouch-Signal/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                policy: self.clone(),
            }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error(TargetRefused::TooManyRedirects(MAX_REDIRECTS));
                }
                match redirects.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(refused) => attempt.error(refused),
                }
            }))
            .build()
    }
}

/// The refusal somewhere in an error's chain of causes, if that is what it is.
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a TargetRefused> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<TargetRefused>() {
            return Some(refused);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(refused) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<TargetRefused>())
            {
                return Some(refused);
            }
        }
        current = e.source();
    }
    None
}

struct GuardedResolver {
    policy: Arc<TargetPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let addresses = policy.resolve(name.as_str()).await?;
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// What kind of special address `ip` is, or None for an ordinary public one.
fn special_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        return Some("cloud metadata");
    }
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else if (a == 192 && b == 0 && c == 0) || (a == 198 && (18..20).contains(&b)) {
        Some("reserved")
    } else if ip.is_documentation() {
        Some("documentation")
    } else {
        None
    }
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return special_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        return special_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    if segments[..4] == [0xfd00, 0x0ec2, 0, 0] {
        return Some("cloud metadata");
    }
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (segments[0] & 0xfe00) == 0xfc00 {
        Some("private (unique local)")
    } else if (segments[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast or reserved")
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        Some("documentation")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &TargetPolicy, url: &str) -> Option<TargetRefused> {
        policy.check_url(&url.parse().unwrap()).err()
    }

    #[test]
    fn refuses_special_addresses_in_every_spelling() {
        let policy = TargetPolicy::default();
        for url in [
            "http://127.0.0.1/hook",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::a00:1]/",
            "http://[fd00:ec2::254]/",
            "http://[fc00::1]/",
            "http://[fe80::1]/",
        ] {
            assert!(refused(&policy, url).is_some(), "{url} was allowed");
        }
        assert_eq!(
            refused(&policy, "http://169.254.169.254/")
                .unwrap()
                .to_string(),
            "169.254.169.254 is a cloud metadata address; targets must be public"
        );
    }

    #[test]
    fn allows_public_addresses_names_and_what_the_operator_allows() {
        let policy = TargetPolicy::default();
        for url in [
            "https://8.8.8.8/",
            "https://hooks.example.com/x",
            "https://[2606:4700::1111]/",
        ] {
            assert_eq!(refused(&policy, url), None, "{url} was refused");
        }
        let allowing = TargetPolicy::new(vec!["10.1.0.0/16".parse().unwrap()]);
        assert_eq!(refused(&allowing, "http://10.1.2.3/"), None);
        assert!(refused(&allowing, "http://10.2.0.1/").is_some());
    }

    #[test]
    fn refuses_other_schemes_and_credentials() {
        let policy = TargetPolicy::default();
        assert!(matches!(
            refused(&policy, "file:///etc/passwd"),
            Some(TargetRefused::Scheme(_))
        ));
        assert!(matches!(
            refused(&policy, "gopher://example.com/"),
            Some(TargetRefused::Scheme(_))
        ));
        assert_eq!(
            refused(&policy, "https://user:pw@example.com/"),
            Some(TargetRefused::Credentials)
        );
    }

    #[test]
    fn a_name_with_any_private_address_is_refused() {
        let policy = TargetPolicy::default();
        let public: SocketAddr = "93.184.216.34:0".parse().unwrap();
        let private: SocketAddr = "10.0.0.1:0".parse().unwrap();
        assert_eq!(policy.check_resolved("hooks.example", &[public]), Ok(()));
        assert_eq!(
            policy
                .check_resolved("internal.example", &[public, private])
                .unwrap_err()
                .to_string(),
            "internal.example resolves to 10.0.0.1, a private address; targets must be public"
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_when_resolved() {
        let error = TargetPolicy::default()
            .resolve("localhost")
            .await
            .unwrap_err();
        let refusal = refusal_in(&error).expect("the refusal is in the chain");
        assert!(matches!(
            refusal,
            TargetRefused::Resolved {
                kind: "loopback",
                ..
            }
        ));
    }
}
