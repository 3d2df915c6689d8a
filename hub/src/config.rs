//! Hub settings, read from `CAREHUB_HUB_*`, `CAREHUB_PRESENCE_TTL`, `CAREHUB_CALL_*`,
//! `CAREHUB_ICE_SERVERS` and `CAREHUB_TURN_*` variables with defaults in code.

use carehub_runtime::{CommonConfig, ConfigError, Env};
use std::net::SocketAddr;
use std::time::Duration;

/// Everything a hub node needs to know at start.
#[derive(Clone)]
pub struct HubConfig {
    /// Where the websocket listener binds (`CAREHUB_HUB_ADDR`).
    pub addr: SocketAddr,
    /// This node's name in presence entries and `welcome` frames.
    pub(crate) node_id: String,
    /// Browser origins allowed to open a socket (see `origin`).
    pub(crate) allowed_origins: Vec<String>,
    /// The public URL of the web client (`CAREHUB_PUBLIC_URL`), whose origin is allowed when
    /// no explicit list is configured.
    pub(crate) public_url: Option<String>,
    /// How long a new socket may take to send its `auth` frame.
    pub(crate) auth_timeout: Duration,
    /// How often the hub pings an idle socket.
    pub(crate) ping_interval: Duration,
    /// A socket that sent nothing (not even a pong) for this long is closed.
    pub(crate) idle_timeout: Duration,
    /// Frames waiting to be written to one socket before it counts as too slow.
    pub(crate) queue_frames: usize,
    /// How long one write may block before the socket is closed as too slow (4008).
    pub(crate) write_timeout: Duration,
    /// Refused frames of one code get at most one error frame per this interval.
    pub(crate) error_interval: Duration,
    /// Kernel send buffer of accepted sockets in bytes; 0 keeps the system default.
    pub(crate) send_buffer: u32,
    /// Largest text frame handled; larger ones get a `payload_too_large` error frame.
    pub(crate) max_frame_bytes: usize,
    /// Largest chat message body, in characters.
    pub(crate) max_chat_chars: usize,
    /// Sustained frames per second one socket may send, and its burst.
    pub(crate) frames_per_sec: u32,
    pub(crate) frame_burst: u32,
    /// How long a presence entry outlives its node's last refresh.
    pub(crate) presence_ttl: Duration,
    /// Calls may start this long before an appointment's start...
    pub(crate) call_early: Duration,
    /// ...and go on until this long after its end.
    pub(crate) call_late: Duration,
    /// STUN/TURN URLs handed to call participants; empty by default (no third party learns
    /// patients' addresses unless an operator chooses so).
    pub(crate) ice_servers: Vec<String>,
    /// Shared secret of a TURN server in `use-auth-secret` mode; never printed.
    pub(crate) turn_secret: Option<String>,
    /// Lifetime of handed-out TURN credentials.
    pub(crate) turn_ttl: Duration,
    pub(crate) stream_replicas: usize,
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("addr", &self.addr)
            .field("node_id", &self.node_id)
            .field("allowed_origins", &self.allowed_origins)
            .field("ice_servers", &self.ice_servers)
            .field(
                "turn_secret",
                &self.turn_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

fn list(env: &Env, var: &str) -> Vec<String> {
    env.raw(var)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl HubConfig {
    /// Reads `CAREHUB_HUB_ADDR` (default `127.0.0.1:8090`), `CAREHUB_HUB_NODE_ID` (random),
    /// `CAREHUB_HUB_ALLOWED_ORIGINS` (comma list), `CAREHUB_PUBLIC_URL`,
    /// `CAREHUB_HUB_AUTH_TIMEOUT` (5 s), `CAREHUB_HUB_PING_INTERVAL` (20 s),
    /// `CAREHUB_HUB_IDLE_TIMEOUT` (60 s), `CAREHUB_HUB_QUEUE` (256 frames),
    /// `CAREHUB_HUB_WRITE_TIMEOUT` (10 s), `CAREHUB_HUB_ERROR_INTERVAL` (250 ms),
    /// `CAREHUB_HUB_SEND_BUFFER` (0 = system default),
    /// `CAREHUB_HUB_MAX_FRAME` (16384 bytes), `CAREHUB_CHAT_MAX_CHARS` (4000),
    /// `CAREHUB_HUB_FRAMES_PER_SEC` / `CAREHUB_HUB_FRAME_BURST` (20 / 40),
    /// `CAREHUB_PRESENCE_TTL` (30 s), `CAREHUB_CALL_EARLY` (900 s), `CAREHUB_CALL_LATE`
    /// (1800 s), `CAREHUB_ICE_SERVERS` (comma list of `stun:`/`turn:`/`turns:` URLs, default
    /// none), `CAREHUB_TURN_SECRET`, `CAREHUB_TURN_TTL` (3600 s).
    ///
    /// # Errors
    /// When a value is set but invalid; the error names the variable.
    pub fn from_env(env: &Env, common: &CommonConfig) -> Result<Self, ConfigError> {
        let cfg = Self {
            addr: env.get("CAREHUB_HUB_ADDR", SocketAddr::from(([127, 0, 0, 1], 8090)))?,
            node_id: env
                .raw("CAREHUB_HUB_NODE_ID")
                .map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_owned),
            allowed_origins: list(env, "CAREHUB_HUB_ALLOWED_ORIGINS"),
            public_url: env.raw("CAREHUB_PUBLIC_URL").map(str::to_owned),
            auth_timeout: env.secs("CAREHUB_HUB_AUTH_TIMEOUT", Duration::from_secs(5))?,
            ping_interval: env.secs("CAREHUB_HUB_PING_INTERVAL", Duration::from_secs(20))?,
            idle_timeout: env.secs("CAREHUB_HUB_IDLE_TIMEOUT", Duration::from_secs(60))?,
            queue_frames: env.get("CAREHUB_HUB_QUEUE", 256usize)?,
            write_timeout: env.secs("CAREHUB_HUB_WRITE_TIMEOUT", Duration::from_secs(10))?,
            error_interval: Duration::from_millis(env.get("CAREHUB_HUB_ERROR_INTERVAL", 250u64)?),
            send_buffer: env.get("CAREHUB_HUB_SEND_BUFFER", 0u32)?,
            max_frame_bytes: env.get("CAREHUB_HUB_MAX_FRAME", 16_384usize)?,
            max_chat_chars: env.get("CAREHUB_CHAT_MAX_CHARS", 4_000usize)?,
            frames_per_sec: env.get("CAREHUB_HUB_FRAMES_PER_SEC", 20u32)?,
            frame_burst: env.get("CAREHUB_HUB_FRAME_BURST", 40u32)?,
            presence_ttl: env.secs("CAREHUB_PRESENCE_TTL", Duration::from_secs(30))?,
            call_early: env.secs("CAREHUB_CALL_EARLY", Duration::from_secs(900))?,
            call_late: env.secs("CAREHUB_CALL_LATE", Duration::from_secs(1_800))?,
            ice_servers: list(env, "CAREHUB_ICE_SERVERS"),
            turn_secret: env.raw("CAREHUB_TURN_SECRET").map(str::to_owned),
            turn_ttl: env.secs("CAREHUB_TURN_TTL", Duration::from_secs(3_600))?,
            stream_replicas: common.streams.replicas,
        };
        let positive = ConfigError::positive;
        positive("CAREHUB_HUB_QUEUE", cfg.queue_frames > 0)?;
        positive("CAREHUB_HUB_FRAMES_PER_SEC", cfg.frames_per_sec > 0)?;
        positive("CAREHUB_HUB_FRAME_BURST", cfg.frame_burst > 0)?;
        positive(
            "CAREHUB_PRESENCE_TTL",
            cfg.presence_ttl >= Duration::from_secs(1),
        )?;
        positive("CAREHUB_HUB_PING_INTERVAL", !cfg.ping_interval.is_zero())?;
        positive("CAREHUB_HUB_IDLE_TIMEOUT", !cfg.idle_timeout.is_zero())?;
        positive("CAREHUB_HUB_ERROR_INTERVAL", !cfg.error_interval.is_zero())?;
        positive("CAREHUB_HUB_WRITE_TIMEOUT", !cfg.write_timeout.is_zero())?;
        if let Some(bad) = cfg.ice_servers.iter().find(|u| {
            !["stun:", "turn:", "turns:"]
                .iter()
                .any(|p| u.starts_with(p))
        }) {
            return Err(ConfigError {
                var: "CAREHUB_ICE_SERVERS".into(),
                message: format!("'{bad}' is not a stun:, turn: or turns: URL"),
            });
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hand_out_no_ice_servers_and_listen_on_8090() {
        let env = Env::default();
        let common = CommonConfig::from_env(&env).unwrap();
        let c = HubConfig::from_env(&env, &common).unwrap();
        assert_eq!(c.addr.port(), 8090);
        assert!(c.ice_servers.is_empty());
        assert!(c.turn_secret.is_none());
        assert_eq!(c.presence_ttl, Duration::from_secs(30));
    }

    #[test]
    fn a_bad_ice_url_names_the_variable_and_the_secret_never_prints() {
        let env = Env::from_pairs([
            ("CAREHUB_ICE_SERVERS", "stun:a:3478, http://x"),
            ("CAREHUB_TURN_SECRET", "hunter2"),
        ]);
        let common = CommonConfig::from_env(&env).unwrap();
        let e = HubConfig::from_env(&env, &common).unwrap_err();
        assert_eq!(e.var, "CAREHUB_ICE_SERVERS");
        let env = Env::from_pairs([("CAREHUB_TURN_SECRET", "hunter2")]);
        let c = HubConfig::from_env(&env, &common).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
