//! The generated files behave as documented: deterministic, valid, with the promised shares.

use std::collections::{HashMap, HashSet};

use idic_synth::eval::{pairwise_from_clusters, pairwise_links, true_links};
use idic_synth::{Corruption, Person, Record, dedup_file, link_files, nicknames, population, write_csv};

fn is_valid_date((year, month, day): (i32, u32, u32)) -> bool {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[test]
fn the_same_seed_gives_the_same_files() {
    let people = population(11, 3_000);
    assert_eq!(people, population(11, 3_000));
    assert_ne!(people, population(12, 3_000));
    let corruption = Corruption::default();
    assert_eq!(dedup_file(5, &people, 0.3, &corruption), dedup_file(5, &people, 0.3, &corruption));
    assert_ne!(dedup_file(5, &people, 0.3, &corruption), dedup_file(6, &people, 0.3, &corruption));
    assert_eq!(link_files(5, &people, 0.6, &corruption), link_files(5, &people, 0.6, &corruption));
}

#[test]
fn population_has_the_requested_size_and_valid_people() {
    for n in [0, 1, 2, 7, 5_000] {
        let people = population(3, n).people;
        assert_eq!(people.len(), n);
        let ids: HashSet<u64> = people.iter().map(|p| p.entity_id).collect();
        assert_eq!(ids.len(), n, "entity ids are unique");
        for p in &people {
            assert!(is_valid_date(p.birth_date), "{:?}", p.birth_date);
            assert!((1929..=2009).contains(&p.birth_date.0), "{:?}", p.birth_date);
            assert!(p.phone.starts_with("+44") && p.phone.len() == 13, "{}", p.phone);
            assert!(p.phone[1..].bytes().all(|b| b.is_ascii_digit()), "{}", p.phone);
            assert!(p.email.contains('@') && p.email == p.email.to_lowercase(), "{}", p.email);
            assert!(!p.given_name.is_empty() && !p.family_name.is_empty());
        }
    }
}

#[test]
fn households_share_an_address_and_no_one_else_does() {
    let people = population(21, 20_000).people;
    let mut by_household: HashMap<u64, Vec<&Person>> = HashMap::new();
    for p in &people {
        by_household.entry(p.household_id).or_default().push(p);
    }
    let mut address_owner: HashMap<(&str, &str, &str), u64> = HashMap::new();
    for (id, members) in &by_household {
        let first = members[0];
        let address = (first.house_number.as_str(), first.street.as_str(), first.city.as_str());
        assert!(members.len() <= 5);
        for m in members {
            assert_eq!((m.house_number.as_str(), m.street.as_str(), m.city.as_str()), address);
            assert_eq!(m.postcode, first.postcode);
        }
        assert_eq!(address_owner.insert(address, *id), None, "two households at {address:?}");
    }
    let mut phone_owner: HashMap<&str, u64> = HashMap::new();
    for p in &people {
        let owner = *phone_owner.entry(p.phone.as_str()).or_insert(p.household_id);
        assert_eq!(owner, p.household_id, "{} is used by two households", p.phone);
    }
    let shared = by_household.values().filter(|m| m.len() > 1).map(Vec::len).sum::<usize>() as f64;
    let share = shared / people.len() as f64;
    assert!((0.25..0.35).contains(&share), "{share} of people share a household");

    let twins = by_household
        .values()
        .flat_map(|members| {
            members.iter().enumerate().flat_map(move |(i, a)| members[i + 1..].iter().map(move |b| (*a, *b)))
        })
        .filter(|(a, b)| a.birth_date == b.birth_date && a.family_name == b.family_name)
        .inspect(|(a, b)| assert_ne!(a.given_name, b.given_name, "twins have different given names"))
        .count();
    assert!(twins >= 5, "{twins} pairs of twins");
}

#[test]
fn common_names_are_common_and_rare_names_are_many() {
    let people = population(8, 50_000).people;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for p in &people {
        *counts.entry(p.family_name.as_str()).or_default() += 1;
    }
    let smith = counts.get("Smith").copied().unwrap_or(0) as f64 / people.len() as f64;
    assert!((0.008..0.02).contains(&smith), "Smith share {smith}");
    let rare = counts.values().filter(|&&c| c <= 30).count();
    assert!(counts.len() > 1_200 && rare > 800, "{} names, {rare} rare", counts.len());
}

#[test]
fn duplicate_rate_is_honoured() {
    let people = population(4, 20_000);
    let records = dedup_file(9, &people, 0.2, &Corruption::default());
    let mut copies: HashMap<u64, usize> = HashMap::new();
    for r in &records {
        *copies.entry(r.entity_id).or_default() += 1;
    }
    assert_eq!(copies.len(), 20_000, "everyone appears");
    assert!(copies.values().all(|&c| (1..=4).contains(&c)));
    let duplicated = copies.values().filter(|&&c| c > 1).count() as f64 / 20_000.0;
    assert!((0.19..0.21).contains(&duplicated), "{duplicated} of people duplicated");
    let with_three_extra = copies.values().filter(|&&c| c == 4).count();
    let with_one_extra = copies.values().filter(|&&c| c == 2).count();
    assert!(with_three_extra * 5 < with_one_extra, "three extra copies are rarer");

    let ids: HashSet<&str> = records.iter().map(|r| r.record_id.as_str()).collect();
    assert_eq!(ids.len(), records.len(), "record ids are unique");

    assert_eq!(dedup_file(9, &people, 0.0, &Corruption::default()).len(), 20_000);
}

#[test]
fn records_are_shuffled() {
    let people = population(4, 1_000);
    let records = dedup_file(1, &people, 0.2, &Corruption::default());
    let in_order = records.windows(2).filter(|w| w[0].entity_id < w[1].entity_id).count();
    assert!(in_order < records.len() * 3 / 4, "{in_order} of {} in order", records.len());
}

#[test]
fn without_corruption_records_are_exact_captures() {
    let people = population(2, 500);
    let records = dedup_file(3, &people, 0.5, &Corruption::none());
    let by_id: HashMap<u64, &Person> = people.people.iter().map(|p| (p.entity_id, p)).collect();
    for r in &records {
        let p = by_id[&r.entity_id];
        assert_eq!(r.given_name.as_deref(), Some(p.given_name.as_str()));
        assert_eq!(r.family_name.as_deref(), Some(p.family_name.as_str()));
        let (y, m, d) = p.birth_date;
        assert_eq!(r.birth_date.as_deref(), Some(format!("{y:04}-{m:02}-{d:02}").as_str()));
        assert_eq!(r.email.as_deref(), Some(p.email.as_str()));
        let digits: String = r.phone.as_deref().unwrap_or("").chars().filter(char::is_ascii_digit).collect();
        assert_eq!(format!("+44{}", &digits[1..]), p.phone);
        assert_eq!(r.address_line.as_deref(), Some(format!("{} {}", p.house_number, p.street).as_str()));
        assert_eq!(r.postcode.as_deref(), Some(p.postcode.as_str()));
        assert_eq!(r.city.as_deref(), Some(p.city.as_str()));
    }
}

#[test]
fn link_files_overlap_as_asked_without_duplicates_inside() {
    let people = population(6, 10_000);
    for overlap in [0.0, 0.3, 0.75, 1.0] {
        let (a, b) = link_files(7, &people, overlap, &Corruption::default());
        let in_a: HashSet<u64> = a.iter().map(|r| r.entity_id).collect();
        let in_b: HashSet<u64> = b.iter().map(|r| r.entity_id).collect();
        assert_eq!(in_a.len(), a.len(), "no duplicates in A");
        assert_eq!(in_b.len(), b.len(), "no duplicates in B");
        assert_eq!(a.len(), b.len());
        let shared = in_a.intersection(&in_b).count() as f64 / a.len() as f64;
        assert!((shared - overlap).abs() < 0.01, "asked {overlap}, got {shared}");
        assert!(a.iter().all(|r| r.record_id.starts_with('A')) && b.iter().all(|r| r.record_id.starts_with('B')));

        let truth = true_links(&a, &b);
        assert_eq!(truth.len(), in_a.intersection(&in_b).count());
        let scores = pairwise_links(&truth, &truth);
        assert_eq!(scores.f1(), 1.0);
    }
}

#[test]
fn the_truth_scores_perfectly_and_singletons_miss_every_pair() {
    let people = population(1, 2_000);
    let records = dedup_file(2, &people, 0.3, &Corruption::default());
    let truth: Vec<u64> = records.iter().map(|r| r.entity_id).collect();
    let perfect = pairwise_from_clusters(&truth, &truth);
    assert_eq!(perfect.false_positives + perfect.false_negatives, 0);
    assert!(perfect.true_positives > 0);
    let singletons: Vec<u64> = (0..records.len() as u64).collect();
    let none = pairwise_from_clusters(&truth, &singletons);
    assert_eq!((none.true_positives, none.false_negatives), (0, perfect.true_positives));
}

#[test]
fn nickname_table_covers_the_usual_names() {
    let table = nicknames();
    assert!(table.len() >= 60);
    let lookup: HashMap<&str, &[&str]> = table.iter().copied().collect();
    assert!(lookup["William"].contains(&"Bill"));
    assert!(lookup["Margaret"].contains(&"Peggy"));
    assert!(lookup["Elizabeth"].contains(&"Liz"));
}

fn record(address_line: &str, city: Option<&str>) -> Record {
    Record {
        record_id: "D0000001".into(),
        entity_id: 42,
        given_name: Some("Jane".into()),
        family_name: Some("O'Brien".into()),
        birth_date: Some("07/03/1984".into()),
        email: None,
        phone: Some("+44 7700 900123".into()),
        address_line: Some(address_line.into()),
        postcode: Some("LS6 2QT".into()),
        city: city.map(Into::into),
    }
}

#[test]
fn csv_has_the_documented_header_and_quotes_commas() {
    let records = [record("12, acacia ave", Some("Leeds")), record("3 \"The Grange\"", None)];
    let mut out = Vec::new();
    write_csv(&records, &mut out, true).expect("writing to memory");
    let text = String::from_utf8(out).expect("CSV is UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "record_id,entity_id,given_name,family_name,birth_date,email,phone,address,postcode,city");
    assert_eq!(lines[1], "D0000001,42,Jane,O'Brien,07/03/1984,,+44 7700 900123,\"12, acacia ave\",LS6 2QT,Leeds");
    assert_eq!(lines[2], "D0000001,42,Jane,O'Brien,07/03/1984,,+44 7700 900123,\"3 \"\"The Grange\"\"\",LS6 2QT,");

    let mut out = Vec::new();
    write_csv(&records[..1], &mut out, false).expect("writing to memory");
    let text = String::from_utf8(out).expect("CSV is UTF-8");
    assert_eq!(
        text.lines().next(),
        Some("record_id,given_name,family_name,birth_date,email,phone,address,postcode,city")
    );
    assert!(!text.contains(",42,"), "no truth column");
}
