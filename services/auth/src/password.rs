//! argon2id password hashing with the OWASP baseline parameters (19 MiB, t=2, p=1: the crate's
//! defaults), run on blocking threads behind a semaphore so a login storm queues instead of
//! starving the async runtime or exhausting memory.
//!
//! Checks reuse their 19 MiB working memory: one buffer per permit, kept for the life of the
//! process. Allocating it afresh for every check costs about as much as a third of the hash
//! itself (the kernel maps and zeroes ~4,900 new pages, and concurrent checks in one process
//! contend on its page tables), which is time a login storm cannot spare.

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher as _, Version};
use carehub_nats::WireError;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Hashes and verifies passwords with a bounded number of concurrent computations.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Working memory of finished checks, taken by the next ones (at most one per permit).
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// A real hash of a random password: verifying against it costs what a real check costs,
    /// so unknown emails take as long to refuse as wrong passwords.
    decoy: Arc<str>,
}

impl Hasher {
    /// # Errors
    /// When the decoy hash cannot be computed (a broken argon2 build).
    pub async fn new(permits: usize) -> Result<Self, WireError> {
        let permits = Arc::new(Semaphore::new(permits.max(1)));
        let decoy_pw = uuid::Uuid::new_v4().to_string();
        let decoy = blocking(move || hash(&decoy_pw)).await??;
        Ok(Self {
            permits,
            memory: Arc::default(),
            decoy: decoy.into(),
        })
    }

    /// Hashes a new password into a PHC string.
    ///
    /// # Errors
    /// Only on an internal failure.
    pub async fn hash(&self, password: &str) -> Result<String, WireError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| WireError::internal())?;
        let pw = password.to_owned();
        blocking(move || hash(&pw)).await?
    }

    /// Checks `password` against `stored`; with `None` checks against the decoy and answers
    /// false, taking the same time.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = stored.is_some();
        let phc = stored.map_or_else(|| self.decoy.to_string(), str::to_owned);
        let pw = password.to_owned();
        let pool = Arc::clone(&self.memory);
        let ok = blocking(move || {
            let mut memory = take(&pool);
            let ok = check(pw.as_bytes(), &phc, &mut memory);
            give_back(&pool, memory);
            ok
        })
        .await
        .unwrap_or(false);
        known && ok
    }
}

fn take(pool: &Mutex<Vec<Vec<Block>>>) -> Vec<Block> {
    pool.lock()
        .ok()
        .and_then(|mut p| p.pop())
        .unwrap_or_default()
}

fn give_back(pool: &Mutex<Vec<Vec<Block>>>, memory: Vec<Block>) {
    if let Ok(mut p) = pool.lock() {
        p.push(memory);
    }
}

/// What `PasswordVerifier::verify_password` does, with the caller's working memory: the
/// algorithm, version, parameters and salt come from the stored PHC string, and the result is
/// compared in constant time. Any malformed or unsupported hash is a failed check.
fn check(password: &[u8], phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(stored) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (stored.salt.as_ref(), stored.hash.as_ref()) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = stored
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(&stored) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = [0u8; Output::MAX_LENGTH];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let Some(working) = memory.get_mut(..blocks) else {
        return false;
    };
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt.as_ref(), &mut *out, working)
        .is_ok()
        && Output::new(out).is_ok_and(|computed| computed == *expected)
}

fn hash(password: &str) -> Result<String, WireError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| {
            tracing::error!(error = %e, "argon2 hashing failed");
            WireError::internal()
        })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, WireError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| WireError::internal())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = Hasher::new(2).await.unwrap();
        let phc = h.hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify("correct horse battery", Some(&phc)).await);
        assert!(!h.verify("wrong horse battery", Some(&phc)).await);
    }

    #[tokio::test]
    async fn reused_memory_agrees_with_the_crate_s_own_verifier() {
        use argon2::PasswordVerifier as _;
        let h = Hasher::new(1).await.unwrap();
        // A hash with other parameters than the defaults needs a different amount of memory.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 3, 1, Some(32)).unwrap(),
        )
        .hash_password(b"tiny horse")
        .unwrap()
        .to_string();
        let big = h.hash("correct horse battery").await.unwrap();
        for (pw, phc) in [("tiny horse", &small), ("correct horse battery", &big)] {
            for attempt in [pw, "not the password"] {
                let ours = h.verify(attempt, Some(phc)).await;
                let theirs = Argon2::default()
                    .verify_password(attempt.as_bytes(), phc.as_str())
                    .is_ok();
                assert_eq!(ours, theirs, "{attempt} against {phc}");
                assert_eq!(ours, attempt == pw);
            }
        }
        assert!(!h.verify("tiny horse", Some("$argon2id$v=19$garbage")).await);
        assert!(!h.verify("tiny horse", Some("not a phc string")).await);
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies_even_with_the_decoy_password() {
        let h = Hasher::new(1).await.unwrap();
        assert!(!h.verify("anything at all", None).await);
    }
}
