//! Free TCP ports on 127.0.0.1 for child servers, never the same one twice in a process.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

/// Ports already handed out by [`free_port`] or claimed with [`claim_port`] in this process.
fn handed_out() -> MutexGuard<'static, HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago and that this process has not
/// handed out before.
///
/// Another process may still take the port between this call and its use; the kernel hands
/// out ephemeral ports round-robin, so that is rare.
///
/// # Errors
/// When the OS refuses to bind 127.0.0.1:0.
pub fn free_port() -> std::io::Result<u16> {
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if claim_port(port) {
            return Ok(port);
        }
    }
}

/// Notes that this process uses `port` (say, a listener it bound itself), so [`free_port`]
/// never hands it out; false when it was already handed out or claimed.
pub fn claim_port(port: u16) -> bool {
    handed_out().insert(port)
}

#[cfg(test)]
mod tests {
    use super::{claim_port, free_port};
    use std::collections::HashSet;

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
        assert!(ports.iter().all(|&port| port != 0));
        assert!(!claim_port(ports[0]));
    }
}
