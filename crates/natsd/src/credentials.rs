//! carehub's NATS users (`nats/conf/permissions.conf`) and a password for each: what
//! nats-server reads (`NATS_<USER>_PASSWORD`) and what carehub's components read
//! (`CAREHUB_<COMPONENT>_NATS_USER` / `_NATS_PASSWORD`).

use rand::Rng as _;

/// The users `permissions.conf` defines: one per component, and `ops` for operators.
pub const USERS: [&str; 8] = [
    "auth", "doctor", "patient", "notify", "admin", "hub", "gateway", "ops",
];

/// A password for every user of [`USERS`]; the `Debug` output hides them.
#[derive(Clone)]
pub struct NatsCredentials {
    passwords: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCredentials")
            .field(
                "users",
                &self.passwords.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A random password nats-server reads back as a string: 32 letters and digits, starting with
/// a letter (a config value that starts with a digit may parse as a number).
pub fn random_nats_password() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    std::iter::once(LETTERS[rng.random_range(0..LETTERS.len())])
        .chain((0..31).map(|_| ALNUM[rng.random_range(0..ALNUM.len())]))
        .map(char::from)
        .collect()
}

impl NatsCredentials {
    /// Fresh random passwords for every user.
    pub fn generate() -> Self {
        Self {
            passwords: USERS.iter().map(|u| (*u, random_nats_password())).collect(),
        }
    }

    /// The password of `user`, if it is one of [`USERS`].
    pub fn password(&self, user: &str) -> Option<&str> {
        self.passwords
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, p)| p.as_str())
    }

    /// What nats-server reads: `NATS_<USER>_PASSWORD` for every user.
    pub fn server_env(&self) -> Vec<(String, String)> {
        self.passwords
            .iter()
            .map(|(u, p)| {
                (
                    format!("NATS_{}_PASSWORD", u.to_ascii_uppercase()),
                    p.clone(),
                )
            })
            .collect()
    }

    /// What carehub reads: `CAREHUB_<COMPONENT>_NATS_USER` and `_NATS_PASSWORD` for every user,
    /// so each component connects as itself.
    pub fn client_env(&self) -> Vec<(String, String)> {
        self.passwords
            .iter()
            .flat_map(|(u, p)| {
                let upper = u.to_ascii_uppercase();
                [
                    (format!("CAREHUB_{upper}_NATS_USER"), (*u).to_owned()),
                    (format!("CAREHUB_{upper}_NATS_PASSWORD"), p.clone()),
                ]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{NatsCredentials, USERS, random_nats_password};

    #[test]
    fn generated_passwords_start_with_a_letter_and_differ() {
        let a = random_nats_password();
        assert_eq!(a.len(), 32);
        assert!(a.starts_with(|c: char| c.is_ascii_alphabetic()));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, random_nats_password());
        let creds = NatsCredentials::generate();
        assert_eq!(creds.server_env().len(), USERS.len());
        assert_eq!(creds.client_env().len(), 2 * USERS.len());
        assert!(!format!("{creds:?}").contains(creds.password("auth").unwrap()));
    }
}
