//! Striped in-process locks that serialise the resolutions of contacts that could be
//! one person (sharing an identifier, the names with the birth date, or a blocking key
//! of the matcher), so that two concurrent first contacts of the same person create
//! one customer, not two, and concurrent import rows resolve as if one after another.

use std::hash::{BuildHasher as _, Hash};
use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};

use crate::domain::customer::{CustomerKind, NewCustomer};
use crate::domain::matching::blocking::blocking_keys;
use crate::domain::matching::record::{MatchRecord, Subject};
use crate::domain::matching::text::fold_name;

/// Enough stripes that unrelated contacts rarely wait for each other (a contact takes
/// about twenty: its identifiers and blocking keys).
const STRIPES: usize = 16_384;

/// The locks; clones share them.
#[derive(Debug, Clone)]
pub struct ContactLocks {
    stripes: Arc<[Mutex<()>]>,
}

impl Default for ContactLocks {
    fn default() -> Self {
        Self { stripes: (0..STRIPES).map(|_| Mutex::new(())).collect() }
    }
}

impl ContactLocks {
    /// Holds the stripes of everything that can identify `contact` (each identifier,
    /// the names with the birth date, and for a person the matcher's blocking keys, which
    /// any record it could match shares) until the guards drop. Stripes are taken in
    /// ascending order, so two contacts sharing several never deadlock.
    pub async fn hold(&self, contact: &NewCustomer) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = contact
            .identifiers
            .iter()
            .map(|id| self.stripe((id.kind.as_str(), id.namespace.as_str(), id.value.as_str())))
            .collect();
        let (given, family) = (fold_name(&contact.given_name), fold_name(&contact.family_name));
        if !given.is_empty() || !family.is_empty() {
            // Names in either order, as the matcher reads them.
            let names = if given <= family { (given, family) } else { (family, given) };
            let birth = contact.birth_date.map(|b| (b.year, b.month, b.day));
            stripes.push(self.stripe((names, birth)));
        }
        if contact.kind == CustomerKind::Person {
            let subject =
                Subject::of(&contact.given_name, &contact.family_name, contact.birth_date, &contact.identifiers);
            stripes.extend(blocking_keys(&MatchRecord::new(&subject)).into_iter().map(|key| self.stripe(key)));
        }
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            guards.push(self.stripes[stripe].lock().await);
        }
        guards
    }

    fn stripe(&self, key: impl Hash) -> usize {
        let hash = std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(key);
        (hash % self.stripes.len() as u64) as usize
    }
}
