//! Idempotent calls, after the IETF `Idempotency-Key` header draft: the first call with a key
//! runs; a repeat from the same caller with the same request gets the stored answer (the
//! appointment as it was then, or the same 4xx error); a repeat with a different request is
//! `422 idempotency_key_reused`; a repeat arriving while the first still runs waits for its
//! answer. 5xx answers and timeouts are not kept, so a retry after one runs again.
//!
//! The claim is a row in `idempotent_calls`, shared by every admin instance through the
//! database. A claim left `running` by an instance that died is taken over after
//! [`STALE_AFTER`].

use carehub_nats::{ErrorCode, WireError};
use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::with_db;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::time::Duration;

/// How long a repeat waits for the first call's answer: less than the bus timeout (5 s), so
/// the waiting caller still gets an answer rather than a gateway timeout.
const WAIT_FOR_FIRST: Duration = Duration::from_millis(4_500);
/// A `running` claim older than this belongs to an instance that died mid-call.
const STALE_AFTER: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);

/// A request that may carry an `Idempotency-Key`.
pub(crate) trait Keyed {
    fn idempotency_key(&self) -> Option<&str>;
}

macro_rules! keyed {
    ($($t:ty),*) => {$(
        impl Keyed for $t {
            fn idempotency_key(&self) -> Option<&str> {
                self.idempotency_key.as_deref()
            }
        }
    )*};
}
keyed!(
    carehub_nats::appointment::RequestAppointment,
    carehub_nats::appointment::BookSlot,
    carehub_nats::appointment::AcceptOffer
);

/// What a call ended in, as stored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Stored<T> {
    Ok(T),
    Err(WireError),
}

/// One idempotent call: who, which key, and the request it names.
pub(crate) struct Call<'a> {
    pub(crate) caller: &'a str,
    pub(crate) key: &'a str,
    /// The operation's name, so one key cannot name two kinds of call.
    pub(crate) operation: &'a str,
    /// The request as parsed, without its key: compared by its canonical JSON, so key order
    /// and whitespace of the original body do not matter.
    pub(crate) request: serde_json::Value,
}

impl Call<'_> {
    fn hash(&self) -> String {
        // serde_json's map is ordered by key, so this text is canonical.
        let body = self.request.to_string();
        let mut h = Sha256::new();
        h.update(self.operation.as_bytes());
        h.update([0]);
        h.update(body.as_bytes());
        hex(&h.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn reused() -> WireError {
    WireError::new(
        ErrorCode::IdempotencyKeyReused,
        "this Idempotency-Key was already used for a different request; use a new key",
    )
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    request_hash: String,
    state: String,
    response: Option<String>,
    started_at: i64,
}

/// Runs `run` at most once per caller and key within `ttl`, as the module documentation says.
///
/// # Errors
/// `idempotency_key_reused`, `conflict` when the first call still runs after the wait, the
/// stored or fresh error of the call, or a storage failure.
pub(crate) async fn once<T, F, Fut>(
    db: &Db,
    ttl: Duration,
    call: Call<'_>,
    run: F,
) -> Result<T, WireError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, WireError>>,
{
    let hash = call.hash();
    let waited_since = tokio::time::Instant::now();
    loop {
        let now = now_ms();
        if claim(db, &call, &hash, now, now + millis(ttl)).await? {
            break;
        }
        let Some(row) = current(db, &call).await? else {
            continue; // expired or released meanwhile: claim again
        };
        if row.request_hash != hash {
            return Err(reused());
        }
        match (row.state.as_str(), row.response) {
            ("done", Some(text)) => {
                return match serde_json::from_str::<Stored<T>>(&text) {
                    Ok(Stored::Ok(v)) => Ok(v),
                    Ok(Stored::Err(e)) => Err(e),
                    Err(_) => Err(WireError::internal()),
                };
            }
            _ if now - row.started_at > millis(STALE_AFTER) => {
                if take_over(db, &call, row.started_at, now).await? {
                    break;
                }
            }
            _ if waited_since.elapsed() >= WAIT_FOR_FIRST => {
                return Err(WireError::conflict(
                    "the first request with this Idempotency-Key is still being processed; retry shortly",
                ));
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
    let outcome = run().await;
    let keep = match &outcome {
        Ok(v) => Some(Stored::Ok(v)),
        Err(e) if e.code.http_status() < 500 => Some(Stored::Err(e.clone())),
        Err(_) => None,
    };
    match keep.map(|s| serde_json::to_string(&s)) {
        Some(Ok(text)) => finish(db, &call, &text).await?,
        _ => release(db, &call).await?,
    }
    outcome
}

async fn claim(
    db: &Db,
    call: &Call<'_>,
    hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<bool, StoreError> {
    // One write: a new row, or a fresh claim over an expired one; nothing when the key is
    // live (running or done), which the caller then reads.
    let q =
        "INSERT INTO idempotent_calls (caller, key, request_hash, state, started_at, expires_at)
                  VALUES ($1, $2, $3, 'running', $4, $5)
             ON CONFLICT (caller, key) DO UPDATE
                SET request_hash = excluded.request_hash, state = 'running', response = NULL,
                    started_at = excluded.started_at, expires_at = excluded.expires_at
              WHERE idempotent_calls.expires_at <= excluded.started_at";
    let n = with_db!(db, p => sqlx::query(q).bind(call.caller).bind(call.key).bind(hash).bind(now)
        .bind(expires_at).execute(p).await?.rows_affected());
    Ok(n == 1)
}

async fn current(db: &Db, call: &Call<'_>) -> Result<Option<ClaimRow>, StoreError> {
    let q = "SELECT request_hash, state, response, started_at FROM idempotent_calls WHERE caller = $1 AND key = $2";
    Ok(
        with_db!(db, p => sqlx::query_as(q).bind(call.caller).bind(call.key).fetch_optional(p).await?),
    )
}

async fn take_over(db: &Db, call: &Call<'_>, seen: i64, now: i64) -> Result<bool, StoreError> {
    let q = "UPDATE idempotent_calls SET started_at = $1
             WHERE caller = $2 AND key = $3 AND state = 'running' AND started_at = $4";
    let n = with_db!(db, p => sqlx::query(q).bind(now).bind(call.caller).bind(call.key).bind(seen)
        .execute(p).await?.rows_affected());
    Ok(n == 1)
}

async fn finish(db: &Db, call: &Call<'_>, response: &str) -> Result<(), StoreError> {
    let q =
        "UPDATE idempotent_calls SET state = 'done', response = $1 WHERE caller = $2 AND key = $3";
    with_db!(db, p => sqlx::query(q).bind(response).bind(call.caller).bind(call.key).execute(p).await?.rows_affected());
    Ok(())
}

async fn release(db: &Db, call: &Call<'_>) -> Result<(), StoreError> {
    let q = "DELETE FROM idempotent_calls WHERE caller = $1 AND key = $2 AND state = 'running'";
    with_db!(db, p => sqlx::query(q).bind(call.caller).bind(call.key).execute(p).await?.rows_affected());
    Ok(())
}

/// Deletes every expired key (the deadline sweep calls this now and then).
///
/// # Errors
/// On storage failure.
pub(crate) async fn purge_expired(db: &Db, now: i64) -> Result<u64, StoreError> {
    let q = "DELETE FROM idempotent_calls WHERE expires_at <= $1";
    Ok(with_db!(db, p => sqlx::query(q).bind(now).execute(p).await?.rows_affected()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(request: serde_json::Value) -> Call<'static> {
        Call {
            caller: "u1",
            key: "k1",
            operation: "book_slot",
            request,
        }
    }

    #[test]
    fn the_hash_ignores_key_order_and_whitespace() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a": 1, "b": [1, 2]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":[1,2],"a":1}"#).unwrap();
        assert_eq!(call(a).hash(), call(b).hash());
    }

    #[test]
    fn the_hash_tells_bodies_and_operations_apart() {
        let a = serde_json::json!({"start": "2026-12-07T08:00:00Z"});
        let b = serde_json::json!({"start": "2026-12-07T08:15:00Z"});
        assert_ne!(call(a.clone()).hash(), call(b).hash());
        let mut other = call(a.clone());
        other.operation = "accept_offer";
        assert_ne!(call(a).hash(), other.hash());
    }
}
