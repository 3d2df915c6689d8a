//! The signing key file and access tokens (JWT, HS256 pinned).
//!
//! The key file is JSON `{"keys":[{"kid","secret","created_at"}]}`, newest first: the first key
//! signs, every key verifies, so after `carehub keys rotate` tokens signed with the previous key
//! stay valid until they expire. All auth instances read the same file, so they agree; an
//! instance that meets an unknown key id re-reads the file (at most every few seconds), so a
//! rotation reaches running instances without a restart. Only the auth service reads this file:
//! nothing else verifies tokens itself.

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use carehub_nats::{ErrorCode, Role, WireError};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// 32 random bytes, base64url without padding.
    secret: String,
    created_at: i64,
}

/// How many keys a rotation keeps (the new one and the previous ones).
const KEPT_KEYS: usize = 3;

fn new_key() -> StoredKey {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let now = carehub_runtime::db::now_ms() / 1000;
    StoredKey {
        kid: format!("k{now}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        secret: URL_SAFE_NO_PAD.encode(secret),
        created_at: now,
    }
}

fn write_key_file(path: &Path, file: &KeyFile) -> anyhow::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(file)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Creates the key file with one fresh key (mode 0600) unless it exists. Returns whether it
/// created one.
///
/// # Errors
/// When the file cannot be written.
pub fn ensure_key_file(path: &Path) -> anyhow::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    write_key_file(
        path,
        &KeyFile {
            keys: vec![new_key()],
        },
    )?;
    Ok(true)
}

/// Puts a new signing key first and keeps the previous ones for verification. Returns the new
/// key id.
///
/// # Errors
/// When the file cannot be read or written.
pub fn rotate_key_file(path: &Path) -> anyhow::Result<String> {
    let mut file = read_key_file(path)?;
    let key = new_key();
    let kid = key.kid.clone();
    file.keys.insert(0, key);
    file.keys.truncate(KEPT_KEYS);
    write_key_file(path, &file)?;
    Ok(kid)
}

fn read_key_file(path: &Path) -> anyhow::Result<KeyFile> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the signing key file {} (set CAREHUB_AUTH_KEY_FILE, or create one with `carehub keys init`)",
            path.display()
        )
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "signing key file is readable by others; chmod 600 it");
        }
    }
    let file: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a carehub key file", path.display()))?;
    anyhow::ensure!(!file.keys.is_empty(), "{} holds no keys", path.display());
    Ok(file)
}

struct Loaded {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
}

fn load(path: &Path) -> anyhow::Result<Loaded> {
    let file = read_key_file(path)?;
    let mut verifying = HashMap::new();
    for k in &file.keys {
        let secret = URL_SAFE_NO_PAD
            .decode(&k.secret)
            .with_context(|| format!("key {} in {} is not base64url", k.kid, path.display()))?;
        anyhow::ensure!(secret.len() >= 32, "key {} is shorter than 32 bytes", k.kid);
        verifying.insert(k.kid.clone(), DecodingKey::from_secret(&secret));
    }
    let first = &file.keys[0];
    let secret = URL_SAFE_NO_PAD.decode(&first.secret)?;
    Ok(Loaded {
        signing_kid: first.kid.clone(),
        signing: EncodingKey::from_secret(&secret),
        verifying,
    })
}

/// The claims of a carehub access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Claims {
    pub(crate) sub: String,
    pub(crate) role: Role,
    pub(crate) iss: String,
    pub(crate) aud: String,
    pub(crate) exp: i64,
    pub(crate) iat: i64,
    pub(crate) jti: String,
    /// Session (refresh family) id.
    pub(crate) sid: String,
    /// The user's token generation when issued; a bump invalidates older tokens.
    pub(crate) tgen: i64,
}

/// An access token just issued.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) token: String,
    /// Its id, which the tests compare with the verified claims.
    #[cfg(test)]
    pub(crate) jti: String,
}

/// Signs and verifies access tokens with the key file's keys.
pub(crate) struct Keys {
    path: PathBuf,
    issuer: String,
    audience: String,
    loaded: RwLock<Arc<Loaded>>,
    last_reload: RwLock<Instant>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const RELOAD_EVERY: Duration = Duration::from_secs(5);

impl Keys {
    /// Loads the key file.
    ///
    /// # Errors
    /// When the file is missing, unreadable or malformed.
    pub(crate) fn load(path: &Path, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            loaded: RwLock::new(Arc::new(load(path)?)),
            last_reload: RwLock::new(Instant::now()),
        })
    }

    fn current(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    /// Signs a token for `sub`.
    ///
    /// # Errors
    /// Only if signing itself fails (a broken crypto backend).
    pub(crate) fn issue(
        &self,
        sub: &str,
        role: Role,
        sid: &str,
        tgen: i64,
        ttl: Duration,
    ) -> Result<Issued, WireError> {
        let keys = self.current();
        let iat = carehub_runtime::db::now_ms() / 1000;
        let exp = iat + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp,
            iat,
            jti: uuid::Uuid::now_v7().to_string(),
            sid: sid.to_owned(),
            tgen,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.signing_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &keys.signing).map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            WireError::internal()
        })?;
        Ok(Issued {
            token,
            #[cfg(test)]
            jti: claims.jti,
        })
    }

    /// Checks signature (HS256 only; `none` and every other algorithm are refused), key id,
    /// issuer, audience and expiry (no leeway: the same service issues and checks).
    ///
    /// # Errors
    /// `token_expired` for an expired token, `unauthorized` for anything else wrong.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, WireError> {
        let bad = || WireError::unauthorized("invalid access token");
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad())?;
        if header.alg != Algorithm::HS256 {
            return Err(bad());
        }
        let kid = header.kid.ok_or_else(bad)?;
        let key = match self.current().verifying.get(&kid) {
            Some(k) => k.clone(),
            None => self.reload_for(&kid).ok_or_else(bad)?,
        };
        let mut v = Validation::new(Algorithm::HS256);
        v.algorithms = vec![Algorithm::HS256];
        v.leeway = 0;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        match jsonwebtoken::decode::<Claims>(token, &key, &v) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => Err(
                WireError::new(ErrorCode::TokenExpired, "access token expired; refresh it"),
            ),
            Err(_) => Err(bad()),
        }
    }

    /// Re-reads the key file when a token names a key we do not know (a rotation happened
    /// elsewhere), at most once per [`RELOAD_EVERY`].
    fn reload_for(&self, kid: &str) -> Option<DecodingKey> {
        {
            let last = self.last_reload.read().ok()?;
            if last.elapsed() < RELOAD_EVERY {
                return None;
            }
        }
        if let Ok(mut last) = self.last_reload.write() {
            *last = Instant::now();
        }
        match load(&self.path) {
            Ok(fresh) => {
                let key = fresh.verifying.get(kid).cloned();
                if let Ok(mut slot) = self.loaded.write() {
                    *slot = Arc::new(fresh);
                }
                key
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not reload the signing key file");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_in(dir: &Path) -> (PathBuf, Keys) {
        let path = dir.join("keys.json");
        assert!(ensure_key_file(&path).unwrap());
        assert!(
            !ensure_key_file(&path).unwrap(),
            "second ensure must keep the file"
        );
        let keys = Keys::load(&path, "carehub", "carehub-api").unwrap();
        (path, keys)
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("carehub-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_key_file_is_private_to_its_owner() {
        let dir = tempdir();
        let (path, _) = keys_in(&dir);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn issued_tokens_verify_and_carry_their_claims() {
        let dir = tempdir();
        let (_, keys) = keys_in(&dir);
        let t = keys
            .issue("u1", Role::Doctor, "s1", 3, Duration::from_secs(60))
            .unwrap();
        let c = keys.verify(&t.token).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.role, c.sid.as_str(), c.tgen),
            ("u1", Role::Doctor, "s1", 3)
        );
        assert_eq!(c.jti, t.jti);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn tokens_of_the_previous_key_stay_valid_after_rotation() {
        let dir = tempdir();
        let (path, keys) = keys_in(&dir);
        let old = keys
            .issue("u1", Role::Patient, "s", 0, Duration::from_secs(60))
            .unwrap();
        rotate_key_file(&path).unwrap();
        let fresh = Keys::load(&path, "carehub", "carehub-api").unwrap();
        assert!(fresh.verify(&old.token).is_ok());
        let new = fresh
            .issue("u1", Role::Patient, "s", 0, Duration::from_secs(60))
            .unwrap();
        let h_old = jsonwebtoken::decode_header(&old.token).unwrap();
        let h_new = jsonwebtoken::decode_header(&new.token).unwrap();
        assert_ne!(h_old.kid, h_new.kid);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_token_from_another_key_file_is_refused() {
        let (d1, d2) = (tempdir(), tempdir());
        let (_, a) = keys_in(&d1);
        let (_, b) = keys_in(&d2);
        let t = a
            .issue("u1", Role::Admin, "s", 0, Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            b.verify(&t.token).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        std::fs::remove_dir_all(d1).ok();
        std::fs::remove_dir_all(d2).ok();
    }
}
