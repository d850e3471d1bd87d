//! Postal addresses: a house on a street in a town, and the postcode that goes with it.

use rand::RngExt;

use crate::places::{CITIES, COMMON_STREETS, STREET_BASES, SUFFIXES};
use crate::tables::TABLES;
use crate::{SynthRng, chance, mix};

/// Letters used in the inward part of UK postcodes (C, I, K, M, O and V are never used).
const INWARD_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
/// Letters used after the district number in central London ("SW1A", "EC2V").
const SUBDISTRICT_LETTERS: &[u8] = b"ABCDEHJKMNPRSTVWXY";

/// One address, as indices into the place tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Address {
    city: u16,
    street: u32,
    number: u16,
    letter: Option<u8>,
}

impl Address {
    /// A random address, towns weighted by population, streets by how common their names are.
    pub(crate) fn random(rng: &mut SynthRng) -> Self {
        let tables = &*TABLES;
        let city = tables.cities.sample(rng) as u16;
        let street = if chance(rng, 0.25) {
            tables.common_streets.sample(rng) as u32
        } else {
            let base = tables.street_bases.sample(rng);
            let suffix = tables.suffixes.sample(rng);
            tables.street_ids[base * SUFFIXES.len() + suffix]
        };
        // Most streets are short: house numbers are mostly small.
        let band = rng.random::<f64>();
        let number = if band < 0.6 {
            rng.random_range(1..=40)
        } else if band < 0.9 {
            rng.random_range(41..=120)
        } else {
            rng.random_range(121..=320)
        };
        let letter = chance(rng, 0.03).then(|| b'A' + rng.random_range(0..3u8));
        Self { city, street, number, letter }
    }

    /// A compact key, equal for equal addresses.
    pub(crate) fn key(&self) -> u64 {
        (u64::from(self.city) << 48)
            | (u64::from(self.street) << 24)
            | (u64::from(self.number) << 8)
            | u64::from(self.letter.unwrap_or(0))
    }

    /// The house number as written: "12" or "12A".
    pub(crate) fn house_number(&self) -> String {
        match self.letter {
            Some(letter) => format!("{}{}", self.number, char::from(letter)),
            None => self.number.to_string(),
        }
    }

    /// The street name: "Acacia Avenue", "High Street".
    pub(crate) fn street(&self) -> String {
        let id = self.street as usize;
        if let Some(common) = COMMON_STREETS.get(id) {
            return (*common).to_owned();
        }
        let id = id - COMMON_STREETS.len();
        format!("{} {}", STREET_BASES[id / SUFFIXES.len()], SUFFIXES[id % SUFFIXES.len()].0)
    }

    /// The town or city.
    pub(crate) fn city(&self) -> &'static str {
        CITIES[usize::from(self.city)].0
    }

    /// The postcode, "LS6 2QT"-like. The outward part depends on town and street, the inward
    /// part also on the block of house numbers, so neighbours share a postcode as in reality.
    pub(crate) fn postcode(&self) -> String {
        let street_hash = mix((u64::from(self.city) << 32) | u64::from(self.street));
        let ranges = CITIES[usize::from(self.city)].2;
        let districts: u64 = ranges.iter().map(|&(_, lo, hi)| u64::from(hi - lo) + 1).sum();
        let mut pick = street_hash % districts.max(1);
        let mut outward = String::with_capacity(8);
        for &(area, lo, hi) in ranges {
            let span = u64::from(hi - lo) + 1;
            if pick < span {
                let district = u64::from(lo) + pick;
                outward.push_str(area);
                outward.push_str(&district.to_string());
                let central = matches!(area, "EC" | "WC") || (matches!(area, "SW" | "W") && district == 1);
                if central {
                    let letter = SUBDISTRICT_LETTERS[((street_hash >> 20) % SUBDISTRICT_LETTERS.len() as u64) as usize];
                    outward.push(char::from(letter));
                }
                break;
            }
            pick -= span;
        }
        let block_hash = mix(street_hash ^ (u64::from(self.number / 16) + 1));
        let digit = (block_hash % 10) as u8;
        let first = INWARD_LETTERS[((block_hash >> 8) % INWARD_LETTERS.len() as u64) as usize];
        let second = INWARD_LETTERS[((block_hash >> 16) % INWARD_LETTERS.len() as u64) as usize];
        format!("{outward} {}{}{}", char::from(b'0' + digit), char::from(first), char::from(second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng_for;

    #[test]
    fn postcodes_have_the_uk_shape_and_belong_to_the_town() {
        let mut rng = rng_for(7, 0);
        for _ in 0..5_000 {
            let address = Address::random(&mut rng);
            let postcode = address.postcode();
            let (outward, inward) = postcode.split_once(' ').expect("postcodes have a space");
            assert_eq!(inward.len(), 3, "{postcode}");
            assert!(inward.as_bytes()[0].is_ascii_digit(), "{postcode}");
            assert!(inward[1..].bytes().all(|b| INWARD_LETTERS.contains(&b)), "{postcode}");
            let area: String = outward.chars().take_while(char::is_ascii_alphabetic).collect();
            let ranges = CITIES[usize::from(address.city)].2;
            assert!(ranges.iter().any(|(a, _, _)| *a == area), "{postcode} not in {}", address.city());
        }
    }

    #[test]
    fn neighbours_share_a_postcode() {
        let mut rng = rng_for(8, 0);
        let mut address = Address::random(&mut rng);
        address.number = 32;
        let mut neighbour = address;
        neighbour.number = 34;
        assert_eq!(address.postcode(), neighbour.postcode());
    }
}
