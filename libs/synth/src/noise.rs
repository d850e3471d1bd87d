//! String-level noise: typing errors, spelling by ear, case and whitespace.

use rand::RngExt;
use rand::seq::IndexedRandom;

use crate::{SynthRng, chance};

/// Keys next to each letter on a UK QWERTY keyboard, `a` to `z`.
const NEIGHBOURS: [&str; 26] = [
    "qwsz", "vghn", "xdfv", "serfcx", "wrsd", "drtgvc", "ftyhbv", "gyujnb", "uojk", "huikmn", "jiolm", "kop", "njk",
    "bhjm", "ipkl", "ol", "wa", "etdf", "awedxz", "ryfg", "yihj", "cfgb", "qeas", "zsdc", "tugh", "asx",
];

/// Spellings that sound alike, as (written, heard-as) pairs over lower-case ASCII.
const PHONETIC: &[(&str, &str)] = &[
    ("ph", "f"),
    ("f", "ph"),
    ("ck", "k"),
    ("c", "k"),
    ("k", "c"),
    ("y", "i"),
    ("i", "y"),
    ("ie", "y"),
    ("y", "ie"),
    ("ey", "y"),
    ("ee", "ea"),
    ("ea", "ee"),
    ("son", "sen"),
    ("sen", "son"),
    ("ll", "l"),
    ("tt", "t"),
    ("nn", "n"),
    ("ss", "s"),
    ("rr", "r"),
    ("mm", "m"),
    ("th", "t"),
    ("mac", "mc"),
    ("mc", "mac"),
    ("ou", "ow"),
    ("ai", "ay"),
    ("ay", "ai"),
    ("ei", "ie"),
    ("ie", "ei"),
    ("wh", "w"),
    ("ks", "x"),
    ("x", "ks"),
    ("z", "s"),
];

/// A random lower-case ASCII letter.
fn random_letter(rng: &mut SynthRng) -> char {
    char::from(b'a' + rng.random_range(0..26u8))
}

/// A key next to `c` on the keyboard, in the same case; a random letter for non-letters.
pub(crate) fn neighbour(c: char, rng: &mut SynthRng) -> char {
    if !c.is_ascii_alphabetic() {
        return random_letter(rng);
    }
    let lower = c.to_ascii_lowercase();
    let keys = NEIGHBOURS[usize::from(lower as u8 - b'a')].as_bytes();
    let key = char::from(keys[rng.random_range(0..keys.len())]);
    if c.is_ascii_uppercase() { key.to_ascii_uppercase() } else { key }
}

/// `s` with one typing error: a neighbouring or random key substituted, a letter dropped, a
/// letter doubled or a neighbouring key inserted, or two adjacent letters transposed. The first
/// letter is rarely touched, as in real data.
pub(crate) fn typo(s: &str, rng: &mut SynthRng) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n < 2 {
        chars.push(random_letter(rng));
        return chars.into_iter().collect();
    }
    let from = if chance(rng, 0.9) { 1 } else { 0 };
    let at = rng.random_range(from..n);
    match rng.random_range(0..100u32) {
        // Substitution, usually a neighbouring key.
        0..40 => {
            let replacement = if chance(rng, 0.75) { neighbour(chars[at], rng) } else { random_letter(rng) };
            chars[at] = if chars[at].is_uppercase() { replacement.to_ascii_uppercase() } else { replacement };
        }
        // Deletion.
        40..60 if n > 2 => {
            chars.remove(at);
        }
        // Insertion: a doubled letter or a neighbouring key.
        40..80 => {
            let extra = if chance(rng, 0.5) { chars[at].to_ascii_lowercase() } else { neighbour(chars[at], rng) };
            chars.insert(at + 1, extra.to_ascii_lowercase());
        }
        // Transposition of two adjacent letters.
        _ => {
            let at = at.min(n - 2);
            chars.swap(at, at + 1);
        }
    }
    chars.into_iter().collect()
}

/// `s` misspelt by ear with one phonetic substitution ("Phillips" → "Fillips", "Katie" →
/// "Katy", "Clark" → "Clarke"), or with its accents dropped; `None` when no rule applies.
pub(crate) fn phonetic(s: &str, rng: &mut SynthRng) -> Option<String> {
    if !s.is_ascii() {
        return Some(fold_accents(s));
    }
    let lower = s.to_ascii_lowercase();
    let mut candidates: Vec<(usize, &str, &str)> = Vec::new();
    for &(from, to) in PHONETIC {
        for (at, _) in lower.match_indices(from) {
            candidates.push((at, from, to));
        }
    }
    // A silent final "e" is often dropped or added: "Anne"/"Ann", "Clarke"/"Clark", "Browne"/"Brown".
    if lower.len() > 3 {
        if lower.ends_with('e') {
            candidates.push((lower.len() - 1, "e", ""));
        } else if lower.ends_with(['n', 'k', 'd']) {
            candidates.push((lower.len(), "", "e"));
        }
    }
    let &(at, from, to) = candidates.choose(rng)?;
    let mut out = String::with_capacity(s.len() + 2);
    out.push_str(&s[..at]);
    let capital = s[at..].starts_with(|c: char| c.is_ascii_uppercase());
    let all_caps = s.len() > 1 && !s.bytes().any(|b| b.is_ascii_lowercase());
    for (i, c) in to.chars().enumerate() {
        out.push(if all_caps || (capital && i == 0) { c.to_ascii_uppercase() } else { c });
    }
    out.push_str(&s[at + from.len()..]);
    Some(out)
}

/// `s` with accented Latin letters replaced by their plain forms ("Hélène" → "Helene").
pub(crate) fn fold_accents(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' | 'ą' => 'a',
            'À' | 'Á' | 'Â' | 'Ä' | 'Ã' | 'Å' | 'Ą' => 'A',
            'ç' | 'ć' | 'č' => 'c',
            'Ç' | 'Ć' | 'Č' => 'C',
            'è' | 'é' | 'ê' | 'ë' | 'ę' => 'e',
            'È' | 'É' | 'Ê' | 'Ë' | 'Ę' => 'E',
            'ì' | 'í' | 'î' | 'ï' => 'i',
            'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
            'ł' => 'l',
            'Ł' => 'L',
            'ñ' | 'ń' => 'n',
            'Ñ' | 'Ń' => 'N',
            'ò' | 'ó' | 'ô' | 'ö' | 'õ' | 'ø' => 'o',
            'Ò' | 'Ó' | 'Ô' | 'Ö' | 'Õ' | 'Ø' => 'O',
            'ś' | 'š' => 's',
            'Ś' | 'Š' => 'S',
            'ù' | 'ú' | 'û' | 'ü' => 'u',
            'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
            'ż' | 'ź' | 'ž' => 'z',
            'Ż' | 'Ź' | 'Ž' => 'Z',
            other => other,
        })
        .collect()
}

/// `s` as a careless system or person might store it: upper case, lower case, stray spaces
/// around it, or a doubled space inside.
pub(crate) fn case_whitespace(s: &str, rng: &mut SynthRng) -> String {
    match rng.random_range(0..100u32) {
        0..35 => s.to_uppercase(),
        35..65 => s.to_lowercase(),
        65..90 => {
            let before = rng.random_range(0..3usize);
            let after = rng.random_range(usize::from(before == 0)..3usize);
            format!("{}{s}{}", " ".repeat(before), " ".repeat(after))
        }
        _ => match s.find(' ') {
            Some(at) => format!("{}  {}", &s[..at], &s[at + 1..]),
            None => format!("{s} "),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng_for;

    /// Optimal-string-alignment distance: insertions, deletions, substitutions, adjacent swaps.
    fn edit_distance(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for (i, row) in d.iter_mut().enumerate() {
            row[0] = i;
        }
        d[0] = (0..=b.len()).collect();
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
                }
            }
        }
        d[a.len()][b.len()]
    }

    #[test]
    fn a_typo_is_one_small_edit() {
        let mut rng = rng_for(1, 0);
        for name in ["Smith", "Elizabeth", "Li", "O'Brien", "Hélène"] {
            for _ in 0..200 {
                let typed = typo(name, &mut rng);
                assert!(edit_distance(name, &typed) <= 1, "{name} -> {typed}");
                assert_ne!(typed.len(), 0);
            }
        }
    }

    #[test]
    fn phonetic_misspellings_keep_capitals() {
        let mut rng = rng_for(2, 0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let spelt = phonetic("Phillips", &mut rng).expect("rules apply to Phillips");
            assert!(spelt.starts_with(|c: char| c.is_ascii_uppercase()), "{spelt}");
            seen.insert(spelt);
        }
        assert!(seen.contains("Fillips"));
        assert!(seen.contains("Philips"));
        assert_eq!(phonetic("Hélène", &mut rng).as_deref(), Some("Helene"));
    }
}
