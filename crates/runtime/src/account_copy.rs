//! The one rule for every service's copy of an account (built from the auth service's account
//! events, `carehub_nats::auth::UserEvent`): an event replaces a copy only when it is newer, so
//! events may arrive late, twice, out of order or replayed (`carehub ops replay`) and the copy
//! never goes back.
//!
//! Newer means a higher account version (the auth service bumps it with every change of the
//! row). An event without a version (0: from an auth instance older than versions, during a
//! rolling upgrade) falls back to comparing the event times, and leaves the copy's version as
//! it was. Each copy keeps `account_version BIGINT NOT NULL DEFAULT 0` beside its time column.

/// Whether an event (`version`, `at`) is newer than a copy holding (`held_version`, `held_at`).
/// The same event applied again counts as newer: applying it is a no-op.
pub fn is_newer(held_version: i64, held_at: i64, version: i64, at: i64) -> bool {
    if version == 0 {
        held_at <= at
    } else {
        held_version < version || (held_version == version && held_at <= at)
    }
}

/// [`is_newer`] as SQL, for an upsert's `ON CONFLICT (id) DO UPDATE SET … WHERE <this>`: the
/// copy is the row of `table` with its time column `at`, the event the `excluded` row.
pub fn newer_sql(table: &str, at: &str) -> String {
    format!(
        "((excluded.account_version = 0 AND {table}.{at} <= excluded.{at}) \
         OR (excluded.account_version > 0 AND ({table}.account_version < excluded.account_version \
             OR ({table}.account_version = excluded.account_version AND {table}.{at} <= excluded.{at}))))"
    )
}

/// The version a copy in `table` keeps after an event applied: the event's, unless it carries
/// none. For the `SET` list of the same upsert: `account_version = <this>`.
pub fn version_sql(table: &str) -> String {
    format!(
        "CASE WHEN excluded.account_version = 0 THEN {table}.account_version ELSE excluded.account_version END"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_higher_version_wins_and_an_unversioned_event_compares_times() {
        // Newer version, even with an earlier clock (another auth instance).
        assert!(is_newer(2, 500, 3, 400));
        // Older version, even with a later clock.
        assert!(!is_newer(3, 400, 2, 500));
        // The same event again.
        assert!(is_newer(3, 400, 3, 400));
        // No version: times decide.
        assert!(is_newer(3, 400, 0, 401));
        assert!(!is_newer(3, 400, 0, 399));
        // A copy from before versions takes any versioned event.
        assert!(is_newer(0, 900, 1, 100));
    }

    /// The SQL rule and the Rust rule agree on every combination, on a real SQLite upsert.
    #[tokio::test]
    async fn the_sql_rule_is_the_same_rule() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE copy (id TEXT PRIMARY KEY, at BIGINT NOT NULL, account_version BIGINT NOT NULL DEFAULT 0, v TEXT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        let upsert = format!(
            "INSERT INTO copy (id, at, account_version, v) VALUES ('a', $1, $2, 'new')
             ON CONFLICT (id) DO UPDATE SET at = excluded.at, v = excluded.v, account_version = {}
             WHERE {}",
            version_sql("copy"),
            newer_sql("copy", "at")
        );
        for held_version in [0, 2, 3] {
            for held_at in [100, 200] {
                for version in [0, 2, 3, 4] {
                    for at in [50, 100, 200, 300] {
                        sqlx::query("DELETE FROM copy")
                            .execute(&pool)
                            .await
                            .unwrap();
                        sqlx::query("INSERT INTO copy (id, at, account_version, v) VALUES ('a', $1, $2, 'held')")
                            .bind(held_at)
                            .bind(held_version)
                            .execute(&pool)
                            .await
                            .unwrap();
                        sqlx::query(sqlx::AssertSqlSafe(upsert.clone()))
                            .bind(at)
                            .bind(version)
                            .execute(&pool)
                            .await
                            .unwrap();
                        let (v, kept): (String, i64) =
                            sqlx::query_as("SELECT v, account_version FROM copy")
                                .fetch_one(&pool)
                                .await
                                .unwrap();
                        let newer = is_newer(held_version, held_at, version, at);
                        let case = format!("held v{held_version}@{held_at}, event v{version}@{at}");
                        assert_eq!(v == "new", newer, "{case}");
                        let expected = if newer && version > 0 {
                            version
                        } else {
                            held_version
                        };
                        assert_eq!(kept, expected, "{case}");
                    }
                }
            }
        }
    }
}
