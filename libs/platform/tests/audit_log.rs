//! The audit log against real Postgres: entries are written inside the audited change's
//! transaction, one or many at a time, and listed newest first.

use idic_platform::audit::{self, AuditRecord};
use idic_proto::common::v1::ListAuditEntriesRequest;
use idic_testkit::TestEnv;
use prost_types::value::Kind;

fn entry<'a>(action: &'a str, resource: &'a str, n: u32) -> AuditRecord<'a> {
    AuditRecord { caller: "test-admin", action, resource, reason: "a test", detail: serde_json::json!({ "n": n }) }
}

/// The action and detail `n` of each entry about `resource`, as ListAuditEntries lists them.
async fn listed(pool: &sqlx::PgPool, resource: &str) -> Vec<(String, Option<f64>)> {
    let request = ListAuditEntriesRequest { resource: resource.to_owned(), ..Default::default() };
    let page = audit::list(pool, request).await.expect("list");
    page.entries
        .into_iter()
        .map(|e| {
            let n = e.detail.and_then(|d| d.fields.get("n")?.kind.clone());
            (e.action, if let Some(Kind::NumberValue(n)) = n { Some(n) } else { None })
        })
        .collect()
}

#[tokio::test]
async fn many_entries_are_written_in_one_go_in_their_order_only_when_committed() {
    let env = TestEnv::start(&[]).await;
    let pool = env.pool("identification").await;

    let mut tx = pool.begin().await.expect("tx");
    audit::record_many(&mut tx, &[entry("MergeCustomers", "customers/a", 0)]).await.expect("record");
    tx.rollback().await.expect("rollback");

    let mut tx = pool.begin().await.expect("tx");
    let batch = [
        entry("MergeCustomers", "customers/a", 1),
        entry("MergeCustomers", "customers/b", 2),
        entry("MergeCustomers", "customers/a", 3),
    ];
    audit::record_many(&mut tx, &batch).await.expect("record many");
    audit::record_many(&mut tx, &[]).await.expect("nothing");
    audit::record(&mut tx, entry("UnmergeCustomer", "customers/a", 4)).await.expect("record one");
    tx.commit().await.expect("commit");

    let expected = [("UnmergeCustomer", 4.0), ("MergeCustomers", 3.0), ("MergeCustomers", 1.0)];
    let expected: Vec<(String, Option<f64>)> = expected.iter().map(|(a, n)| ((*a).to_owned(), Some(*n))).collect();
    assert_eq!(listed(&pool, "customers/a").await, expected, "newest first, the rolled back entry absent");
    assert_eq!(listed(&pool, "customers/b").await.len(), 1);
    let all = audit::list(&pool, ListAuditEntriesRequest::default()).await.expect("list").entries;
    assert!(all.iter().all(|e| e.caller == "test-admin" && e.reason == "a test"));
    assert_eq!(all.len(), 4);
    pool.close().await;
    env.cleanup().await;
}
