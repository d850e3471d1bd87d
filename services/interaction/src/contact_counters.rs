//! The frequency-cap counters in Redis: per customer, a sorted set of their recent
//! outbound contacts scored by time. Postgres (the interactions) stays the truth: a
//! counter is rebuilt from it when missing, lives at most [`KEY_TTL`], and checks count
//! from Postgres when Redis is down.
//!
//! Key `interaction:contacts:{customer_id}`: members `{interaction_id}|{channel}|{purpose}`
//! scored by occurrence time in milliseconds, plus the member [`COMPLETE`] (score 0)
//! saying the set was built from Postgres and holds every contact since.

use std::time::Duration;

use chrono::{DateTime, Utc};
use idic_platform::redis::Redis;
use uuid::Uuid;

use crate::domain::contact_policy::{Channel, CountedContact, Purpose};

/// Marks a counter rebuilt from Postgres (a set without it is incomplete).
const COMPLETE: &str = "#complete";

/// How long a counter lives: the most a counter missing a contact (a Redis write lost
/// after the contact committed) can undercount for.
pub const KEY_TTL: Duration = Duration::from_secs(600);

/// Redis could not answer: count from Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// The counters of every customer.
#[derive(Debug, Clone)]
pub struct ContactCounters {
    redis: Redis,
}

impl ContactCounters {
    /// Counters in `redis`.
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    fn key(&self, customer: Uuid) -> String {
        self.redis.key(&format!("interaction:contacts:{customer}"))
    }

    async fn run<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, Unavailable> {
        if !self.redis.available() {
            return Err(Unavailable);
        }
        let mut conn = self.redis.connection();
        match tokio::time::timeout(self.redis.command_timeout(), pipe.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                tracing::debug!(%error, "contact counter: redis failed; counting from postgres");
                self.redis.mark_failed();
                Err(Unavailable)
            }
            Err(_) => {
                self.redis.mark_failed();
                Err(Unavailable)
            }
        }
    }

    /// The customer's counted contacts after `since`: `Ok(None)` when no complete
    /// counter exists (rebuild it from Postgres).
    pub async fn read(&self, customer: Uuid, since: DateTime<Utc>) -> Result<Option<Vec<CountedContact>>, Unavailable> {
        let key = self.key(customer);
        let mut pipe = redis::pipe();
        pipe.cmd("ZSCORE").arg(&key).arg(COMPLETE);
        pipe.cmd("ZRANGEBYSCORE").arg(&key).arg(format!("({}", since.timestamp_millis())).arg("+inf").arg("WITHSCORES");
        let (complete, members): (Option<f64>, Vec<(String, f64)>) = self.run(&pipe).await?;
        if complete.is_none() {
            return Ok(None);
        }
        Ok(Some(members.iter().filter_map(|(member, score)| parse_member(member, *score)).collect()))
    }

    /// Replaces the customer's counter with `contacts` (all those since the longest window).
    pub async fn rebuild(&self, customer: Uuid, contacts: &[(Uuid, CountedContact)]) -> Result<(), Unavailable> {
        let key = self.key(customer);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("DEL").arg(&key).ignore();
        let mut add = redis::cmd("ZADD");
        add.arg(&key).arg(0).arg(COMPLETE);
        for (id, contact) in contacts {
            add.arg(contact.time.timestamp_millis()).arg(member(*id, contact));
        }
        pipe.add_command(add).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(KEY_TTL.as_millis() as u64).ignore();
        self.run::<()>(&pipe).await
    }

    /// Counts a committed outbound contact. A failure is logged and left to the TTL: the
    /// counter may undercount until it is rebuilt (enforced recording counts from
    /// Postgres, so it is never wrong).
    pub async fn add(&self, customer: Uuid, id: Uuid, contact: &CountedContact) {
        let key = self.key(customer);
        let mut pipe = redis::pipe();
        // Only a complete counter is worth adding to; otherwise the next read rebuilds.
        pipe.cmd("ZSCORE").arg(&key).arg(COMPLETE);
        if let Ok((Some(_),)) = self.run::<(Option<f64>,)>(&pipe).await {
            let mut pipe = redis::pipe();
            pipe.cmd("ZADD").arg(&key).arg(contact.time.timestamp_millis()).arg(member(id, contact)).ignore();
            if self.run::<()>(&pipe).await.is_err() {
                tracing::warn!(%customer, "contact counter not updated; it undercounts until rebuilt");
            }
        }
    }

    /// Forgets the customer's counter (after a merge or erasure re-keys contacts).
    pub async fn forget(&self, customer: Uuid) {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(self.key(customer)).ignore();
        let _ = self.run::<()>(&pipe).await;
    }
}

fn member(id: Uuid, contact: &CountedContact) -> String {
    format!("{id}|{}|{}", contact.channel.0, contact.purpose.0)
}

fn parse_member(member: &str, score: f64) -> Option<CountedContact> {
    let mut parts = member.split('|');
    let _id = parts.next()?;
    let channel = parts.next()?.parse().ok()?;
    let purpose = parts.next()?.parse().ok()?;
    let time = DateTime::<Utc>::from_timestamp_millis(score as i64)?;
    Some(CountedContact { channel: Channel(channel), purpose: Purpose(purpose), time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_the_completeness_mark_is_not_a_contact() {
        let contact = CountedContact {
            channel: Channel::SMS,
            purpose: Purpose::MARKETING,
            time: DateTime::<Utc>::from_timestamp_millis(1_800_000_000_123).expect("time"),
        };
        let text = member(Uuid::nil(), &contact);
        assert_eq!(parse_member(&text, 1_800_000_000_123.0), Some(contact));
        assert_eq!(parse_member(COMPLETE, 0.0), None);
    }
}
