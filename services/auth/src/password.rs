//! argon2id password hashing with the OWASP baseline parameters (19 MiB, t=2, p=1: the crate's
//! defaults), run on blocking threads behind a semaphore so a login storm queues instead of
//! starving the async runtime or exhausting memory.

use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use carehub_nats::WireError;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Hashes and verifies passwords with a bounded number of concurrent computations.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
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
        let ok = blocking(move || {
            Argon2::default()
                .verify_password(pw.as_bytes(), phc.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        known && ok
    }
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
    async fn an_unknown_account_never_verifies_even_with_the_decoy_password() {
        let h = Hasher::new(1).await.unwrap();
        assert!(!h.verify("anything at all", None).await);
    }
}
