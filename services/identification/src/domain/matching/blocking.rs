//! The population in memory: every active customer's match record in a slot,
//! blocking keys → slots (so a lookup compares against a few candidates, not the
//! whole file), and name frequencies. Kept current record by record.
//!
//! Blocking keys are chosen so that a duplicate shares at least one with its
//! original under the usual errors: names in either order with the birth year or the
//! postcode area; the birth date (day and month in either order) with either name's
//! initial, the house number or the postcode;
//! day and month with the given name's sound; the names' sounds alone; exact names;
//! each email, email local part, phone, address (with its postcode or its town) and
//! national id.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};

use super::model::NameFrequencies;
use super::record::{MatchRecord, hash_str};

/// A record's place in the population.
pub type Slot = u32;

/// Blocks with more records than this are too common to say anything (a shared
/// family name with a common year): they are not used to find candidates.
pub const MAX_BLOCK: usize = 1_000;

/// Blocks with more records than this are left out when enumerating all pairs of the
/// population (a block of n gives n²/2 pairs; the records meet in smaller blocks).
pub const MAX_PAIR_BLOCK: usize = 300;

#[derive(Debug, Clone)]
enum Postings {
    One(Slot),
    Many(Vec<Slot>),
}

impl Postings {
    fn as_slice(&self) -> &[Slot] {
        match self {
            Postings::One(slot) => std::slice::from_ref(slot),
            Postings::Many(slots) => slots,
        }
    }
}

/// Keys that are hashes already are used as they are (no second hashing on the hot path).
type HashAsIs = std::hash::BuildHasherDefault<KeyIsHash>;

/// A hasher for `u64` keys that are already hashes.
#[derive(Debug, Default)]
struct KeyIsHash(u64);

impl std::hash::Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; fold anything else in for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The population of match records with its blocking index.
#[derive(Debug, Default)]
pub struct Population {
    records: Vec<Option<MatchRecord>>,
    free: Vec<Slot>,
    blocks: HashMap<u64, Postings>,
    given_counts: HashMap<u64, u32, HashAsIs>,
    family_counts: HashMap<u64, u32, HashAsIs>,
    live: usize,
}

impl Population {
    /// An empty population.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// One past the highest slot ever used.
    pub fn slot_bound(&self) -> usize {
        self.records.len()
    }

    /// The record in `slot`.
    pub fn get(&self, slot: Slot) -> Option<&MatchRecord> {
        self.records.get(slot as usize).and_then(Option::as_ref)
    }

    /// Adds a record and answers its slot.
    pub fn insert(&mut self, record: MatchRecord) -> Slot {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.records.push(None);
                Slot::try_from(self.records.len() - 1).expect("fewer than 4 billion records")
            }
        };
        for key in blocking_keys(&record) {
            match self.blocks.entry(key) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Postings::One(slot));
                }
                std::collections::hash_map::Entry::Occupied(mut e) => match e.get_mut() {
                    Postings::One(other) => {
                        let other = *other;
                        if other != slot {
                            e.insert(Postings::Many(vec![other, slot]));
                        }
                    }
                    Postings::Many(slots) => {
                        if !slots.contains(&slot) {
                            slots.push(slot);
                        }
                    }
                },
            }
        }
        if let Some(name) = &record.given {
            *self.given_counts.entry(name.hash).or_default() += 1;
        }
        if let Some(name) = &record.family {
            *self.family_counts.entry(name.hash).or_default() += 1;
        }
        self.records[slot as usize] = Some(record);
        self.live += 1;
        slot
    }

    /// Removes the record in `slot` (nothing if empty) and answers it.
    pub fn remove(&mut self, slot: Slot) -> Option<MatchRecord> {
        let record = self.records.get_mut(slot as usize)?.take()?;
        for key in blocking_keys(&record) {
            if let std::collections::hash_map::Entry::Occupied(mut e) = self.blocks.entry(key) {
                match e.get_mut() {
                    Postings::One(_) => {
                        e.remove();
                    }
                    Postings::Many(slots) => {
                        slots.retain(|s| *s != slot);
                        if slots.len() == 1 {
                            let last = slots[0];
                            e.insert(Postings::One(last));
                        }
                    }
                }
            }
        }
        let decrement = |counts: &mut HashMap<u64, u32, HashAsIs>, hash: u64| {
            if let Some(n) = counts.get_mut(&hash) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&hash);
                }
            }
        };
        if let Some(name) = &record.given {
            decrement(&mut self.given_counts, name.hash);
        }
        if let Some(name) = &record.family {
            decrement(&mut self.family_counts, name.hash);
        }
        self.free.push(slot);
        self.live -= 1;
        Some(record)
    }

    /// The slots sharing a usable blocking key with `record`, each once, ascending.
    pub fn candidates(&self, record: &MatchRecord, out: &mut Vec<Slot>) {
        out.clear();
        for key in blocking_keys(record) {
            if let Some(postings) = self.blocks.get(&key) {
                let slots = postings.as_slice();
                if slots.len() <= MAX_BLOCK {
                    out.extend_from_slice(slots);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Every pair of slots sharing a usable blocking key, each once, as (low, high).
    pub fn candidate_pairs(&self) -> Vec<(Slot, Slot)> {
        let mut pairs: Vec<u64> = Vec::new();
        for postings in self.blocks.values() {
            let slots = postings.as_slice();
            if slots.len() < 2 || slots.len() > MAX_PAIR_BLOCK {
                continue;
            }
            for (i, &a) in slots.iter().enumerate() {
                for &b in &slots[i + 1..] {
                    let (low, high) = if a < b { (a, b) } else { (b, a) };
                    pairs.push((u64::from(low) << 32) | u64::from(high));
                }
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        pairs.into_iter().map(|p| ((p >> 32) as Slot, p as Slot)).collect()
    }

    /// Slots of every held record, ascending.
    pub fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.records.iter().enumerate().filter(|(_, r)| r.is_some()).map(|(i, _)| i as Slot)
    }
}

impl NameFrequencies for Population {
    fn population(&self) -> usize {
        self.live
    }
    fn given(&self, hash: u64) -> f64 {
        f64::from(self.given_counts.get(&hash).copied().unwrap_or(0)) / self.live.max(1) as f64
    }
    fn family(&self, hash: u64) -> f64 {
        f64::from(self.family_counts.get(&hash).copied().unwrap_or(0)) / self.live.max(1) as f64
    }
}

/// The blocking keys of a record (hashes of tagged tuples).
pub fn blocking_keys(record: &MatchRecord) -> Vec<u64> {
    let mut keys = Vec::with_capacity(16);
    let given = record.given.as_ref();
    let family = record.family.as_ref();
    let sounds = match (given, family) {
        (Some(g), Some(f)) => Some((g.soundex.min(f.soundex), g.soundex.max(f.soundex))),
        _ => None,
    };
    let initial = |name: Option<&super::record::Name>| name.map_or(0, |n| u64::from(n.text.as_bytes()[0]));
    if let Some((low, high)) = sounds {
        // Names alone (in either order): contacts often give nothing else.
        keys.push(key(&[12, u64::from(low), u64::from(high)]));
        if let Some(birth) = record.birth.filter(|b| b.year != 0) {
            keys.push(key(&[1, u64::from(low), u64::from(high), u64::from(birth.year)]));
        }
        for address in &record.addresses {
            if address.area != 0 {
                keys.push(key(&[2, u64::from(low), u64::from(high), address.area]));
            }
        }
    }
    if let Some(birth) = record.birth {
        let (a, b) = (birth.month.min(birth.day), birth.month.max(birth.day));
        let date = (u64::from(birth.year) << 16) | (u64::from(a) << 8) | u64::from(b);
        // With either name's initial (names may come swapped).
        for name in [given, family] {
            if name.is_some() {
                keys.push(key(&[3, date, initial(name)]));
            }
        }
        if let Some(g) = given {
            keys.push(key(&[5, u64::from(birth.month), u64::from(birth.day), u64::from(g.soundex)]));
        }
        // The birth date with the house number or the postcode: both names mistyped or
        // changed.
        for address in &record.addresses {
            if !address.house.is_empty() {
                keys.push(key(&[14, date, hash_str(&address.house)]));
            }
            if address.postcode != 0 {
                keys.push(key(&[17, date, address.postcode]));
            }
        }
    }
    // Either name's sound with the postcode (the other name missing or changed), or
    // with the other's initial and the town (a mistyped postcode too).
    for address in &record.addresses {
        for (name, other) in [(given, family), (family, given)] {
            let Some(name) = name else { continue };
            if address.postcode != 0 {
                keys.push(key(&[15, u64::from(name.soundex), address.postcode]));
            }
            if address.city != 0 {
                keys.push(key(&[16, u64::from(name.soundex), initial(other), address.city]));
            }
        }
    }
    if let (Some(g), Some(f)) = (given, family) {
        keys.push(key(&[6, g.hash.min(f.hash), g.hash.max(f.hash)]));
    }
    for email in &record.emails {
        keys.push(key(&[7, email.hash]));
        keys.push(key(&[8, email.local_hash]));
    }
    for &phone in &record.phones {
        keys.push(key(&[9, phone]));
    }
    for address in &record.addresses {
        if address.line_hash != 0 {
            keys.push(key(&[10, address.line_hash, address.postcode]));
            // The house and street with the town: a mistyped postcode. (Not alone:
            // "12 High Street" is in every town.)
            if address.city != 0 {
                keys.push(key(&[13, address.line_hash, address.city]));
            }
        }
    }
    for &id in &record.national_ids {
        keys.push(key(&[11, id]));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn key(parts: &[u64]) -> u64 {
    let mut hasher = std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().build_hasher();
    for part in parts {
        hasher.write_u64(*part);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::super::record::Subject;
    use super::*;

    fn person(given: &str, family: &str, birth: (u16, u8, u8), email: &str) -> MatchRecord {
        MatchRecord::new(&Subject {
            given_name: given.into(),
            family_name: family.into(),
            birth_date: Some((Some(birth.0), birth.1, birth.2)),
            emails: if email.is_empty() { vec![] } else { vec![email.into()] },
            ..Subject::default()
        })
    }

    #[test]
    fn duplicates_share_a_block_and_strangers_do_not() {
        let mut population = Population::new();
        let original = population.insert(person("William", "Smith", (1984, 3, 7), "bill@example.net"));
        let stranger = population.insert(person("Ada", "Lovelace", (1815, 12, 10), "ada@example.org"));
        let mut out = Vec::new();
        // Swapped names, transposed day and month, no email.
        population.candidates(&person("Smith", "William", (1984, 7, 3), ""), &mut out);
        assert_eq!(out, vec![original]);
        // A nickname, same birth date.
        population.candidates(&person("Bill", "Smith", (1984, 3, 7), ""), &mut out);
        assert_eq!(out, vec![original]);
        // Married: a new family name, same given name and birth date.
        population.candidates(&person("William", "Jones", (1984, 3, 7), ""), &mut out);
        assert_eq!(out, vec![original]);
        // Only the email in common.
        population.candidates(&person("W", "S", (1990, 1, 1), "bill@example.net"), &mut out);
        assert_eq!(out, vec![original]);
        assert_eq!(population.candidate_pairs(), Vec::<(Slot, Slot)>::new());
        let duplicate = population.insert(person("Wiliam", "Smith", (1984, 3, 7), ""));
        assert_eq!(population.candidate_pairs(), vec![(original, duplicate)]);
        assert!(
            (population.family(population.get(original).and_then(|r| r.family.as_ref()).map_or(0, |n| n.hash))
                - 2.0 / 3.0)
                .abs()
                < 1e-9
        );
        population.remove(duplicate);
        assert_eq!(population.len(), 2);
        assert_eq!(population.candidate_pairs(), Vec::<(Slot, Slot)>::new());
        assert!(population.get(stranger).is_some());
        // Slots are reused.
        assert_eq!(population.insert(person("A", "B", (2000, 1, 1), "")), duplicate);
    }
}
