//! `carehub up` needs a NATS server: use the configured one, or start a local child with
//! carehub's NATS users (`nats/conf/permissions.conf`) and freshly generated passwords, through
//! the one launcher (`carehub-natsd`).

use anyhow::Context as _;
use carehub_natsd::{ChildNats, Launch, NatsCredentials, conf, greets_as_nats};
use std::path::Path;
use std::time::Duration;

fn host_port(url: &str) -> Option<(String, u16)> {
    let first = url.split(',').next()?.trim();
    let rest = first.split("://").nth(1).unwrap_or(first);
    let hostport = rest.rsplit('@').next()?;
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "4222"));
    Some((host.to_owned(), port.trim_end_matches('/').parse().ok()?))
}

/// Whether a NATS server greets clients at `host:port` (any address the name resolves to).
async fn answers(host: &str, port: u16) -> bool {
    let Ok(addrs) = tokio::net::lookup_host((host, port)).await else {
        return false;
    };
    for addr in addrs {
        if greets_as_nats(addr).await {
            return true;
        }
    }
    false
}

/// Returns `None` when a server answers at `url`; otherwise starts `nats-server` on the URL's
/// port (loopback only) from `nats/conf/single.conf` with JetStream storing in
/// `<data_dir>/nats`, its configuration in `<data_dir>/nats-conf`, its log in
/// `<data_dir>/nats-server.log` and carehub's users with passwords generated now (kept in
/// memory only; see [`ChildNats::credentials`]).
///
/// # Errors
/// When no server answers and none can be started.
pub(crate) async fn ensure(url: &str, data_dir: &Path) -> anyhow::Result<Option<ChildNats>> {
    let (host, port) =
        host_port(url).with_context(|| format!("CAREHUB_NATS_URL: cannot parse '{url}'"))?;
    if answers(&host, port).await {
        return Ok(None);
    }
    let local = matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1");
    anyhow::ensure!(
        local,
        "no NATS server answers at {url}, and it is not local, so none can be started here"
    );
    let binary = carehub_natsd::nats_server_binary()?;
    carehub_natsd::require_current(&binary)?;
    let started = Launch::carehub(data_dir, conf::SINGLE, NatsCredentials::generate())
        .port(port)
        .ready_within(Duration::from_secs(10))
        .start()
        .await
        .with_context(|| {
            format!("no NATS server answers at {url} and none could be started (or set CAREHUB_NATS_URL)")
        })?;
    tracing::info!(
        port,
        "started a local nats-server with JetStream and a generated password per component"
    );
    Ok(Some(started))
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn nats_urls_yield_host_and_port() {
        assert_eq!(
            host_port("nats://127.0.0.1:4222"),
            Some(("127.0.0.1".into(), 4222))
        );
        assert_eq!(
            host_port("nats://u:p@localhost:5000,nats://x:1"),
            Some(("localhost".into(), 5000))
        );
        assert_eq!(host_port("localhost"), Some(("localhost".into(), 4222)));
    }
}
