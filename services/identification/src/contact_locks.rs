//! Striped in-process locks that serialise the resolutions of one contact, so that
//! two concurrent first contacts of the same person create one customer, not two.

use std::hash::{BuildHasher as _, Hash};
use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};

use crate::domain::customer::NewCustomer;
use crate::domain::matching::text::fold_name;

/// Enough stripes that unrelated contacts rarely wait for each other.
const STRIPES: usize = 4096;

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
    /// and the names with the birth date) until the guards drop. Stripes are taken in
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
