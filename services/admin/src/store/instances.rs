//! Admin instances' routing leases and the adoption of a stopped instance's requests.

use carehub_runtime::db::{Db, StoreError};
use carehub_runtime::{with_db, write_tx};

/// Renews an instance's lease (creating its row on first call).
///
/// # Errors
/// On storage failure.
pub(crate) async fn renew_lease(db: &Db, id: &str, until: i64, now: i64) -> Result<(), StoreError> {
    let q = "INSERT INTO admin_instances (id, lease_until, started_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until";
    with_db!(db, p => sqlx::query(q).bind(id).bind(until).bind(now).execute(p).await?.rows_affected());
    Ok(())
}

/// Gives up an instance's lease at a clean shutdown, so others adopt its requests at once.
///
/// # Errors
/// On storage failure.
pub(crate) async fn release_lease(db: &Db, id: &str) -> Result<(), StoreError> {
    with_db!(db, p => sqlx::query("UPDATE admin_instances SET lease_until = 0 WHERE id = $1").bind(id).execute(p).await?.rows_affected());
    Ok(())
}

/// Moves the open requests of instances whose lease ran out (or of no instance) to `me`,
/// compare-and-set per request, and forgets those instances. Returns the adopted ids.
///
/// # Errors
/// On storage failure.
pub(crate) async fn adopt_orphans(db: &Db, me: &str, now: i64) -> Result<Vec<String>, StoreError> {
    write_tx!(db, tx => {
        let dead: Vec<String> = sqlx::query_scalar("SELECT id FROM admin_instances WHERE lease_until < $1 AND id <> $2")
            .bind(now).bind(me).fetch_all(&mut *tx).await?;
        let mut adopted: Vec<String> = sqlx::query_scalar(
            "UPDATE appointments SET owner = $1 WHERE status IN ('requested', 'offered')
               AND (owner IS NULL OR owner NOT IN (SELECT id FROM admin_instances WHERE lease_until >= $2 OR id = $1))
             RETURNING id")
            .bind(me).bind(now).fetch_all(&mut *tx).await?;
        for d in &dead {
            sqlx::query("DELETE FROM admin_instances WHERE id = $1 AND lease_until < $2").bind(d).bind(now).execute(&mut *tx).await?;
        }
        adopted.sort();
        Ok::<_, StoreError>(adopted)
    })
}
