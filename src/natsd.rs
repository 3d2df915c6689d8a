//! `carehub up` needs a NATS server: use the configured one, or start a local child.

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A nats-server started by this process; killed when dropped.
#[derive(Debug)]
pub struct ChildNats {
    child: Child,
}

impl Drop for ChildNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn host_port(url: &str) -> Option<(String, u16)> {
    let first = url.split(',').next()?.trim();
    let rest = first.split("://").nth(1).unwrap_or(first);
    let hostport = rest.rsplit('@').next()?;
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "4222"));
    Some((host.to_owned(), port.trim_end_matches('/').parse().ok()?))
}

fn reachable(host: &str, port: u16) -> bool {
    use std::net::ToSocketAddrs as _;
    (host, port)
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

/// The nats-server executable: on PATH, or Debian's `/usr/sbin/nats-server`.
pub fn nats_server_binary() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nats-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nats-server")])
        .find(|p| p.is_file())
}

/// Returns `None` when a server answers at `url`; otherwise starts `nats-server` with
/// JetStream, storing in `<data_dir>/nats`, on the URL's port (loopback only).
///
/// # Errors
/// When no server answers and none can be started.
pub fn ensure(url: &str, data_dir: &Path) -> anyhow::Result<Option<ChildNats>> {
    let (host, port) =
        host_port(url).with_context(|| format!("CAREHUB_NATS_URL: cannot parse '{url}'"))?;
    if reachable(&host, port) {
        return Ok(None);
    }
    let local = matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1");
    anyhow::ensure!(
        local,
        "no NATS server answers at {url}, and it is not local, so none can be started here"
    );
    let bin = nats_server_binary().context(
        "no NATS server answers and nats-server is not installed (apt-get install nats-server, or set CAREHUB_NATS_URL)",
    )?;
    let store = data_dir.join("nats");
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let log = std::fs::File::create(data_dir.join("nats-server.log"))?;
    let child = Command::new(&bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let started = ChildNats { child };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reachable("127.0.0.1", port) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "nats-server did not start; see {}/nats-server.log",
            data_dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!(port, "started a local nats-server with JetStream");
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
