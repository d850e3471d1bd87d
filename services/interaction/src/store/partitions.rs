//! Monthly range partitions of `interactions`: created ahead of time (this month and the
//! next few) by a background task, and on demand for the months of history a batch
//! brings. There is no default partition, so each month stays one droppable table.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Datelike as _, Months, NaiveDate, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Months created ahead of the current one.
const MONTHS_AHEAD: u32 = 3;

/// A month, as `year * 12 + month0`.
pub type Month = i32;

/// The month of `t`.
pub fn month_of(t: DateTime<Utc>) -> Month {
    t.year() * 12 + t.month0() as i32
}

fn first_day(month: Month) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(month.div_euclid(12), month.rem_euclid(12) as u32 + 1, 1)
}

/// The name of a month's partition, e.g. `interactions_p2026_11`.
pub fn partition_name(month: Month) -> String {
    format!("interactions_p{:04}_{:02}", month.div_euclid(12), month.rem_euclid(12) + 1)
}

/// Creates partitions, remembering those it knows to exist.
#[derive(Debug, Clone)]
pub struct Partitions {
    pool: PgPool,
    known: Arc<Mutex<HashSet<Month>>>,
}

impl Partitions {
    /// Partition upkeep over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, known: Arc::default() }
    }

    /// Makes sure the partitions of `months` exist.
    pub async fn ensure(&self, months: impl IntoIterator<Item = Month>) -> sqlx::Result<()> {
        let missing: Vec<Month> = {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            let mut missing: Vec<Month> = months.into_iter().filter(|m| !known.contains(m)).collect();
            missing.sort_unstable();
            missing.dedup();
            missing
        };
        for month in missing {
            self.create(month).await?;
            self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(month);
        }
        Ok(())
    }

    async fn create(&self, month: Month) -> sqlx::Result<()> {
        let (Some(from), Some(to)) = (first_day(month), first_day(month + 1)) else {
            return Err(sqlx::Error::Protocol(format!("month {month} out of range")));
        };
        let name = partition_name(month);
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {name} PARTITION OF interactions \
             FOR VALUES FROM ('{from} 00:00:00+00') TO ('{to} 00:00:00+00')"
        );
        match sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&self.pool).await {
            Ok(_) => Ok(()),
            // Two processes creating the same month at once: one wins, the other sees
            // a duplicate catalog entry. The partition exists either way.
            Err(e) if self.exists(&name).await.unwrap_or(false) => {
                tracing::debug!(error = %e, partition = %name, "partition created concurrently");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn exists(&self, name: &str) -> sqlx::Result<bool> {
        sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(name).fetch_one(&self.pool).await
    }

    /// Creates this month's partition and the next [`MONTHS_AHEAD`].
    pub async fn ensure_ahead(&self) -> sqlx::Result<()> {
        let now = Utc::now();
        let months = (0..=MONTHS_AHEAD).filter_map(|i| now.checked_add_months(Months::new(i))).map(month_of);
        self.ensure(months.collect::<Vec<_>>()).await
    }

    /// Keeps partitions created ahead, twice a day, until `shutdown`.
    pub async fn keep_ahead(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(12 * 3600)) => {}
            }
            if let Err(e) = self.ensure_ahead().await {
                tracing::warn!(error = %e, "creating interaction partitions ahead failed; partitions are also created on demand");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn months_name_their_partitions() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 16, 0, 0).single().expect("valid");
        assert_eq!(partition_name(month_of(t)), "interactions_p2026_11");
        assert_eq!(first_day(month_of(t) + 1), NaiveDate::from_ymd_opt(2026, 12, 1));
        assert_eq!(first_day(month_of(t) + 2), NaiveDate::from_ymd_opt(2027, 1, 1));
    }
}
