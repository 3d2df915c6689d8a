//! The gateway's settings, read once from `CAREHUB_*` variables.

use carehub_runtime::{ConfigError, Env};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Everything the gateway is configured with. Holds no secrets, so `Debug` prints it all.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where to listen (`CAREHUB_GATEWAY_ADDR`).
    pub addr: SocketAddr,
    /// Longest time a positive token check is reused; zero turns the cache off.
    pub(crate) verify_cache_ttl: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub(crate) trusted_proxies: Vec<IpNet>,
    /// Browser origins allowed by CORS (exact match).
    pub(crate) cors_origins: Vec<String>,
    /// Largest request body in bytes.
    pub(crate) body_limit: usize,
    /// Sustained requests per second per client address; zero turns rate limiting off.
    pub(crate) rate_limit_per_sec: u32,
    /// Requests a client may send at once before the sustained rate applies.
    pub(crate) rate_limit_burst: u32,
    /// Micro service names `/readyz` pings.
    pub(crate) required_services: Vec<String>,
    /// Mark the refresh cookie `Secure` and send `Strict-Transport-Security`.
    pub(crate) cookie_secure: bool,
    /// Static files served at `/`, with `index.html` for unknown paths (a single-page app).
    pub(crate) web_dir: Option<PathBuf>,
    /// Hub node websocket URLs `/ws` is forwarded to; one is picked per connection, the next
    /// tried when it cannot be reached.
    pub(crate) hub_urls: Vec<String>,
    /// A forwarded socket whose client sent nothing (not even a pong) for this long is closed.
    pub(crate) hub_idle_timeout: Duration,
    /// A write to a forwarded socket's client blocked this long closes it as too slow (4008).
    pub(crate) hub_write_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            verify_cache_ttl: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            body_limit: 65_536,
            rate_limit_per_sec: 50,
            rate_limit_burst: 100,
            required_services: vec![
                carehub_nats::auth::subject::SERVICE.to_owned(),
                carehub_nats::doctor::subject::SERVICE.to_owned(),
                carehub_nats::patient::subject::SERVICE.to_owned(),
                // The admin service (appointments); the contract crate names no constant for it.
                "admin".to_owned(),
                carehub_nats::notify::subject::SERVICE.to_owned(),
            ],
            cookie_secure: true,
            web_dir: None,
            hub_urls: vec!["ws://127.0.0.1:8090/ws".to_owned()],
            hub_idle_timeout: Duration::from_secs(60),
            hub_write_timeout: Duration::from_secs(10),
        }
    }
}

impl GatewayConfig {
    /// Reads `CAREHUB_GATEWAY_ADDR` (default `127.0.0.1:8080`), `CAREHUB_VERIFY_CACHE_TTL`
    /// (seconds, default 30, 0 = cache off), `CAREHUB_TRUSTED_PROXIES` (comma-separated IPs or
    /// CIDRs), `CAREHUB_CORS_ORIGINS` (comma-separated), `CAREHUB_BODY_LIMIT` (bytes, default
    /// 65536), `CAREHUB_RATE_LIMIT_PER_SEC` / `CAREHUB_RATE_LIMIT_BURST` (defaults 50 / 100),
    /// `CAREHUB_REQUIRED_SERVICES` (default `auth,doctor,patient,admin,notify`), `CAREHUB_COOKIE_SECURE` (default true) and
    /// `CAREHUB_WEB_DIR` (optional), `CAREHUB_HUB_URL` (comma-separated websocket URLs of hub
    /// nodes, default `ws://127.0.0.1:8090/ws`), `CAREHUB_HUB_IDLE_TIMEOUT` (seconds,
    /// default 60, as the hub's own) and `CAREHUB_HUB_WRITE_TIMEOUT` (seconds, default 10, as
    /// the hub's own).
    ///
    /// # Errors
    /// When a value is set but invalid; the error names the variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let trusted_proxies = list(env, "CAREHUB_TRUSTED_PROXIES")
            .iter()
            .map(|s| {
                IpNet::parse(s).ok_or_else(|| ConfigError {
                    var: "CAREHUB_TRUSTED_PROXIES".into(),
                    message: format!("'{s}' is not an IP address or CIDR block"),
                })
            })
            .collect::<Result<_, _>>()?;
        let burst = env.get("CAREHUB_RATE_LIMIT_BURST", d.rate_limit_burst)?;
        if burst == 0 {
            return Err(ConfigError {
                var: "CAREHUB_RATE_LIMIT_BURST".into(),
                message: "must be at least 1".into(),
            });
        }
        let required = env
            .raw("CAREHUB_REQUIRED_SERVICES")
            .map_or(d.required_services, |_| {
                list(env, "CAREHUB_REQUIRED_SERVICES")
            });
        Ok(Self {
            addr: env.get("CAREHUB_GATEWAY_ADDR", d.addr)?,
            verify_cache_ttl: env.secs("CAREHUB_VERIFY_CACHE_TTL", d.verify_cache_ttl)?,
            trusted_proxies,
            cors_origins: list(env, "CAREHUB_CORS_ORIGINS"),
            body_limit: env.get("CAREHUB_BODY_LIMIT", d.body_limit)?,
            rate_limit_per_sec: env.get("CAREHUB_RATE_LIMIT_PER_SEC", d.rate_limit_per_sec)?,
            rate_limit_burst: burst,
            required_services: required,
            cookie_secure: env.flag("CAREHUB_COOKIE_SECURE", d.cookie_secure)?,
            web_dir: env
                .raw("CAREHUB_WEB_DIR")
                .map(PathBuf::from)
                .or_else(default_web_dir),
            hub_urls: hub_urls(env, d.hub_urls)?,
            hub_idle_timeout: env.secs("CAREHUB_HUB_IDLE_TIMEOUT", d.hub_idle_timeout)?,
            hub_write_timeout: env.secs("CAREHUB_HUB_WRITE_TIMEOUT", d.hub_write_timeout)?,
        })
    }

    /// Whether `ip` is one of the configured trusted proxies.
    pub(crate) fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}

fn hub_urls(env: &Env, default: Vec<String>) -> Result<Vec<String>, ConfigError> {
    if env.raw("CAREHUB_HUB_URL").is_none() {
        return Ok(default);
    }
    let urls = list(env, "CAREHUB_HUB_URL");
    if urls.is_empty() {
        return Err(ConfigError {
            var: "CAREHUB_HUB_URL".into(),
            message: "names no hub node".into(),
        });
    }
    if let Some(bad) = urls.iter().find(|u| !u.starts_with("ws://")) {
        return Err(ConfigError {
            var: "CAREHUB_HUB_URL".into(),
            message: format!("'{bad}' is not a ws:// URL"),
        });
    }
    Ok(urls)
}

fn list(env: &Env, var: &str) -> Vec<String> {
    env.raw(var)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An IP network: an address and a prefix length (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `10.0.0.0/8`, `::1` or `fd00::/8`; `None` when it is neither.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (
                a.trim().parse::<IpAddr>().ok()?,
                Some(p.trim().parse().ok()?),
            ),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` lies inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

/// `web/dist` under the working directory when it holds a built client.
fn default_web_dir() -> Option<PathBuf> {
    let dir = PathBuf::from("web/dist");
    dir.join("index.html").is_file().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_without_variables() {
        let c = GatewayConfig::from_env(&Env::default()).unwrap();
        assert_eq!(c.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.verify_cache_ttl, Duration::from_secs(30));
        assert_eq!(
            c.required_services,
            vec!["auth", "doctor", "patient", "admin", "notify"]
        );
        assert!(c.cookie_secure);
        assert!(c.trusted_proxies.is_empty());
    }

    #[test]
    fn lists_and_cidrs_are_parsed_and_bad_ones_name_the_variable() {
        let env = Env::from_pairs([
            ("CAREHUB_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            (
                "CAREHUB_CORS_ORIGINS",
                "https://a.example,https://b.example",
            ),
            ("CAREHUB_REQUIRED_SERVICES", "auth,patient"),
        ]);
        let c = GatewayConfig::from_env(&env).unwrap();
        assert!(c.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(c.is_trusted_proxy("::ffff:10.9.9.9".parse().unwrap()));
        assert!(c.is_trusted_proxy("::1".parse().unwrap()));
        assert!(!c.is_trusted_proxy("11.0.0.1".parse().unwrap()));
        assert_eq!(c.cors_origins.len(), 2);
        assert_eq!(c.required_services, vec!["auth", "patient"]);

        let bad = Env::from_pairs([("CAREHUB_TRUSTED_PROXIES", "10.0.0.0/33")]);
        let err = GatewayConfig::from_env(&bad).unwrap_err();
        assert_eq!(err.var, "CAREHUB_TRUSTED_PROXIES");
    }

    #[test]
    fn cidr_prefixes_that_are_not_byte_aligned_match_correctly() {
        let net = IpNet::parse("192.168.0.0/20").unwrap();
        assert!(net.contains("192.168.15.255".parse().unwrap()));
        assert!(!net.contains("192.168.16.0".parse().unwrap()));
        assert!(
            IpNet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(IpNet::parse("not-an-ip").is_none());
    }
}
