//! Cleansing through real gRPC: a generated customer file with known duplicates,
//! created without matching, is cleansed by the job; clusters are merged (the
//! oldest record survives), the review band filed, clusters listed; a dry run
//! merges nothing.

mod common;

use std::time::Duration;

use common::{admin, get, identifier};
use idic_identification::domain::{BirthDate, DateOrder};
use idic_proto::common::v1::{GetJobRequest, IdentifierKind, Job, JobState};
use idic_proto::identification::v1::{
    ClusterDisposition, CreateCustomerRequest, Customer, CustomerKind, CustomerState, Date,
    ListDuplicateClustersRequest, ListIdentifiersRequest, Provenance, ResolveCustomerRequest, StartCleansingRequest,
};
use idic_synth::{Corruption, Record, dedup_file, eval, population};
use idic_testkit::TestEnv;
use tonic::Code;

fn customer(record: &Record, with_contacts: bool) -> Customer {
    let birth = record
        .birth_date
        .as_deref()
        .and_then(|raw| BirthDate::parse_text(raw, DateOrder::DayFirst, chrono::Utc::now()).ok())
        .map(|b| Date { year: b.year.map_or(0, i32::from), month: i32::from(b.month), day: i32::from(b.day) });
    let mut identifiers = Vec::new();
    let address = record.address();
    if !address.trim().is_empty() {
        identifiers.push(identifier(IdentifierKind::PostalAddress, &address));
    }
    if with_contacts {
        if let Some(email) = &record.email {
            identifiers.push(identifier(IdentifierKind::Email, email));
        }
        if let Some(phone) = &record.phone {
            identifiers.push(idic_proto::common::v1::Identifier {
                kind: IdentifierKind::Phone as i32,
                value: phone.clone(),
                namespace: "44".into(),
            });
        }
    }
    Customer {
        kind: CustomerKind::Person as i32,
        given_name: record.given_name.clone().unwrap_or_default(),
        family_name: record.family_name.clone().unwrap_or_else(|| "Unknown".into()),
        birth_date: birth,
        identifiers,
        ..Default::default()
    }
}

/// Creates every record as its own customer (no matching); answers the names in order.
async fn load_file(client: &mut common::Client, records: &[Record]) -> Vec<String> {
    let mut names = Vec::with_capacity(records.len());
    for record in records {
        let mut attempt = client
            .create_customer(CreateCustomerRequest { customer: Some(customer(record, true)), ..Default::default() })
            .await;
        // A duplicate repeating an email or phone cannot hold it too: created without.
        if attempt.as_ref().is_err_and(|s| matches!(s.code(), Code::AlreadyExists | Code::InvalidArgument)) {
            attempt = client
                .create_customer(CreateCustomerRequest {
                    customer: Some(customer(record, false)),
                    ..Default::default()
                })
                .await;
        }
        names.push(attempt.expect("create").into_inner().name);
    }
    names
}

async fn finished(client: &mut common::Client, job: &Job) -> Job {
    for _ in 0..600 {
        let now = client.get_job(GetJobRequest { name: job.name.clone() }).await.expect("job").into_inner();
        if now.state == JobState::Succeeded as i32 || now.state == JobState::Failed as i32 {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the job did not finish in time");
}

fn count(job: &Job, key: &str) -> f64 {
    job.result
        .as_ref()
        .and_then(|r| r.fields.get(key))
        .and_then(|v| match v.kind {
            Some(prost_types::value::Kind::NumberValue(n)) => Some(n),
            _ => None,
        })
        .unwrap_or(-1.0)
}

#[tokio::test]
async fn cleansing_merges_duplicate_clusters_and_lists_them() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let people = population(5, 150);
    let records = dedup_file(6, &people, 0.4, &Corruption::default());
    let names = load_file(&mut client, &records).await;

    // A dry run finds clusters and merges nothing.
    let dry = client
        .start_cleansing(StartCleansingRequest { dry_run: true, ..Default::default() })
        .await
        .expect("start")
        .into_inner();
    let dry = finished(&mut client, &dry).await;
    assert_eq!(dry.state, JobState::Succeeded as i32, "{dry:?}");
    assert!(count(&dry, "clusters") > 0.0);
    assert_eq!(count(&dry, "auto_merged"), 0.0);
    assert_eq!(get(&mut client, &names[0]).await.state, CustomerState::Active as i32);
    let dry_clusters = client
        .list_duplicate_clusters(ListDuplicateClustersRequest {
            parent: dry.name.clone(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("dry clusters")
        .into_inner()
        .clusters;
    assert!(!dry_clusters.is_empty());
    assert!(dry_clusters.iter().all(|c| c.disposition == ClusterDisposition::Unresolved as i32 && c.merge.is_empty()));

    let job = client.start_cleansing(StartCleansingRequest::default()).await.expect("start").into_inner();
    let job = finished(&mut client, &job).await;
    assert_eq!(job.state, JobState::Succeeded as i32, "{job:?}");
    assert_eq!(count(&job, "customers_scanned"), records.len() as f64);
    assert!(count(&job, "auto_merged") > 0.0, "{job:?}");

    // Pairwise accuracy of the merges against the truth: survivors label clusters.
    let mut label_of: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut predicted = Vec::with_capacity(names.len());
    for name in &names {
        let customer = get(&mut client, name).await;
        let survivor = if customer.merged_into.is_empty() { customer.name } else { customer.merged_into };
        let next = label_of.len() as u64;
        predicted.push(*label_of.entry(survivor).or_insert(next));
    }
    let truth: Vec<u64> = records.iter().map(|r| r.entity_id).collect();
    let scores = eval::pairwise_from_clusters(&truth, &predicted);
    eprintln!(
        "cleansing of {} records: {scores:?} precision {:.4} recall {:.4}",
        records.len(),
        scores.precision(),
        scores.recall()
    );
    assert!(scores.precision() >= 0.99, "{scores:?}");
    assert!(scores.recall() >= 0.9, "{scores:?}");

    let listed = client
        .list_duplicate_clusters(ListDuplicateClustersRequest { page_size: 1000, ..Default::default() })
        .await
        .expect("clusters")
        .into_inner();
    assert_eq!(listed.total_size as f64, count(&job, "clusters"));
    let merged = listed.clusters.iter().find(|c| !c.merge.is_empty()).expect("a merged cluster");
    assert!(merged.members.len() >= 2 && !merged.survivor.is_empty());
    let oldest = merged.members.iter().map(|m| m.customer.clone()).min().expect("members");
    assert_eq!(merged.survivor, oldest, "the oldest record survives");

    // A second run finds nothing more to merge.
    let again = client.start_cleansing(StartCleansingRequest::default()).await.expect("start").into_inner();
    let again = finished(&mut client, &again).await;
    assert_eq!(count(&again, "auto_merged"), 0.0, "{again:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn bad_thresholds_are_refused() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let refused = client
        .start_cleansing(StartCleansingRequest {
            review_threshold: Some(0.99),
            auto_merge_threshold: Some(0.9),
            ..Default::default()
        })
        .await
        .expect_err("review above auto");
    common::assert_invalid(&refused, &["review_threshold"]);
    let refused = client
        .start_cleansing(StartCleansingRequest { auto_merge_threshold: Some(1.5), ..Default::default() })
        .await
        .expect_err("not a probability");
    common::assert_invalid(&refused, &["auto_merge_threshold"]);
    let none = client.list_duplicate_clusters(ListDuplicateClustersRequest::default()).await.expect_err("none yet");
    assert_eq!(none.code(), Code::NotFound);
    env.cleanup().await;
}

/// A contact of `customer` observed on `date` ("2020-01-01").
fn contact_on(customer: Customer, date: &str) -> ResolveCustomerRequest {
    let time = chrono::DateTime::parse_from_rfc3339(&format!("{date}T12:00:00Z")).expect("date");
    ResolveCustomerRequest {
        customer: Some(customer),
        provenance: Some(Provenance {
            source: "crm".into(),
            channel: 0,
            observe_time: Some(prost_types::Timestamp { seconds: time.timestamp(), nanos: 0 }),
        }),
        request_id: String::new(),
    }
}

#[tokio::test]
async fn cleansing_flags_a_phone_not_seen_since_a_newer_one_and_not_one_still_in_use() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let phone = |number: &str| idic_proto::common::v1::Identifier {
        kind: IdentifierKind::Phone as i32,
        value: number.into(),
        namespace: "44".into(),
    };
    let person = |given: &str, mail: &str, number: &str| Customer {
        kind: CustomerKind::Person as i32,
        given_name: given.into(),
        family_name: "Seacole".into(),
        identifiers: vec![identifier(IdentifierKind::Email, mail), phone(number)],
        ..Default::default()
    };
    // Moved on: the old phone was last seen before the new one appeared.
    let moved = client
        .resolve_customer(contact_on(person("Florence", "mary.florence@seacole.net", "07700 900001"), "2020-01-01"))
        .await
        .expect("resolve")
        .into_inner();
    client
        .resolve_customer(contact_on(person("Florence", "mary.florence@seacole.net", "07700 900002"), "2023-01-01"))
        .await
        .expect("resolve");
    // Two phones in use: the old one seen again after the new one appeared.
    let both = client
        .resolve_customer(contact_on(person("Edith", "mary.edith@seacole.net", "07700 900003"), "2020-01-01"))
        .await
        .expect("resolve")
        .into_inner();
    client
        .resolve_customer(contact_on(person("Edith", "mary.edith@seacole.net", "07700 900004"), "2023-01-01"))
        .await
        .expect("resolve");
    client
        .resolve_customer(contact_on(person("Edith", "mary.edith@seacole.net", "07700 900003"), "2024-01-01"))
        .await
        .expect("resolve");

    let job = client.start_cleansing(StartCleansingRequest::default()).await.expect("start").into_inner();
    let job = finished(&mut client, &job).await;
    assert_eq!(job.state, JobState::Succeeded as i32, "{job:?}");
    assert_eq!(count(&job, "stale_flagged"), 1.0, "{job:?}");

    let phones = |parent: String| {
        let mut client = client.clone();
        async move {
            let listed = client
                .list_identifiers(ListIdentifiersRequest {
                    parent,
                    kind: IdentifierKind::Phone as i32,
                    ..Default::default()
                })
                .await
                .expect("list")
                .into_inner()
                .identifiers;
            listed
                .into_iter()
                .map(|i| (i.identifier.expect("identifier").value, i.stale, i.superseded_by))
                .collect::<Vec<_>>()
        }
    };
    let moved_phones = phones(moved.customer.expect("customer").name).await;
    let old = moved_phones.iter().find(|p| p.0.ends_with("900001")).expect("old phone");
    let new = moved_phones.iter().find(|p| p.0.ends_with("900002")).expect("new phone");
    assert!(old.1, "the old phone is stale: {moved_phones:?}");
    assert!(!new.1 && !old.2.is_empty(), "superseded by the new one: {moved_phones:?}");
    let both_phones = phones(both.customer.expect("customer").name).await;
    assert!(both_phones.iter().all(|p| !p.1), "both in use, neither stale: {both_phones:?}");
}
