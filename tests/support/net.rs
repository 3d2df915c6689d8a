//! Free ports, and a TCP proxy that can cut a link to simulate a network failure.
//!
//! The proxy sits between one component and a server (typically nats-server), so that one
//! component loses its connection while the others keep theirs.

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// Returns a TCP port on 127.0.0.1 that was free a moment ago and that this process has not
/// handed out before (the launcher's own [`carehub_natsd::free_port`], so the nats-servers it
/// starts on free ports never get one of these either).
///
/// Another process may still take the port between this call and its use; the kernel hands
/// out ephemeral ports round-robin, so that is rare.
///
/// # Panics
///
/// Panics when the OS refuses to bind 127.0.0.1:0.
pub(crate) fn free_port() -> u16 {
    carehub_natsd::free_port()
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"))
}

/// A TCP proxy on 127.0.0.1 that forwards bytes both ways to one target.
///
/// [`cut`](Self::cut) closes every live connection and turns away new ones (they are accepted
/// and reset at once) until [`restore`](Self::restore). Dropping the proxy stops it and closes
/// its connections.
pub(crate) struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    accept_loop: JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    cut: bool,
    connections: Vec<AbortHandle>,
}

impl ProxyState {
    fn lock(state: &Mutex<Self>) -> MutexGuard<'_, Self> {
        state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close_all(&mut self) {
        // Aborting a forwarding task drops both of its sockets, which closes them.
        for connection in self.connections.drain(..) {
            connection.abort();
        }
    }
}

impl TcpProxy {
    /// Starts a proxy to `target` on 127.0.0.1 and a free port.
    ///
    /// The listener stays bound until the proxy is dropped, so its address never changes.
    ///
    /// # Panics
    ///
    /// Panics outside a Tokio runtime, or when no listening socket can be opened.
    pub(crate) fn start(target: SocketAddr) -> TcpProxy {
        let std_listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind the proxy's listener: {e}"));
        std_listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("cannot make the proxy's listener non-blocking: {e}"));
        let addr = std_listener
            .local_addr()
            .unwrap_or_else(|e| panic!("cannot read the proxy's address: {e}"));
        carehub_natsd::claim_port(addr.port());
        let listener = TcpListener::from_std(std_listener)
            .unwrap_or_else(|e| panic!("cannot register the proxy's listener with Tokio: {e}"));
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let accept_loop = tokio::spawn(accept_loop(listener, target, Arc::clone(&state)));
        TcpProxy {
            addr,
            target,
            state,
            accept_loop,
        }
    }

    /// The address clients connect to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the proxy forwards to.
    pub(crate) fn target(&self) -> SocketAddr {
        self.target
    }

    /// Closes every live connection and turns away new ones until [`restore`](Self::restore).
    pub(crate) fn cut(&self) {
        let mut state = ProxyState::lock(&self.state);
        state.cut = true;
        state.close_all();
    }

    /// Lets new connections through again after [`cut`](Self::cut).
    pub(crate) fn restore(&self) {
        ProxyState::lock(&self.state).cut = false;
    }

    /// Whether the link is cut.
    pub(crate) fn is_cut(&self) -> bool {
        ProxyState::lock(&self.state).cut
    }

    /// How many connections are being forwarded right now.
    pub(crate) fn live_connections(&self) -> usize {
        let mut state = ProxyState::lock(&self.state);
        state.connections.retain(|c| !c.is_finished());
        state.connections.len()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept_loop.abort();
        ProxyState::lock(&self.state).close_all();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, state: Arc<Mutex<ProxyState>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Transient accept errors (e.g. too many open files): keep serving.
            tokio::task::yield_now().await;
            continue;
        };
        // Deciding and registering under one lock means `cut` can never miss a connection.
        let mut guard = ProxyState::lock(&state);
        if guard.cut {
            drop(guard);
            // A reset rather than a graceful close, the nearest thing to a refused connection.
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        guard.connections.retain(|c| !c.is_finished());
        let task = tokio::spawn(forward(client, target));
        guard.connections.push(task.abort_handle());
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // Either side closing or failing ends the connection; there is nobody to report to.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
