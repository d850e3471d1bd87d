//! ImportCustomers through real gRPC streaming: every row resolved like a contact,
//! bad rows reported with the field while the rest go in, and a re-run of the same
//! source counted as duplicates, never applied twice.

mod common;

use common::{admin, assert_invalid, email, identifier, person, text_fact};
use idic_proto::common::v1::IdentifierKind;
use idic_proto::identification::v1::{
    Customer, Date, ImportCustomersRequest, ImportCustomersResponse, ImportRow, ListCustomersRequest,
};
use idic_testkit::TestEnv;

fn row(row_id: &str, customer: Customer) -> ImportRow {
    ImportRow { row_id: row_id.into(), customer: Some(customer), ..Default::default() }
}

fn partner_list() -> Vec<ImportRow> {
    let born = Some(Date { year: 1971, month: 6, day: 28 });
    let address = identifier(IdentifierKind::PostalAddress, "3 Rue des Lilas, 75011 Paris");
    vec![
        row(
            "1",
            Customer { identifiers: vec![email("elon@rocket-mail.net")], birth_date: born, ..person("Elon", "Musk") },
        ),
        // The same person again from another channel: linked on the matcher.
        row("2", Customer { identifiers: vec![address.clone()], birth_date: born, ..person("Elon", "Musk") }),
        // The same email: linked exactly.
        row("3", Customer { identifiers: vec![email("ELON@Rocket-Mail.net")], ..person("E", "Musk") }),
        row("4", Customer { identifiers: vec![email("test@test.com")], ..person("Junk", "Email") }),
        row("5", Customer { birth_date: Some(Date { year: 1990, month: 2, day: 30 }), ..person("Bad", "Date") }),
        ImportRow {
            facts: vec![text_fact("favourite_colour", "teal")],
            ..row("6", Customer { identifiers: vec![email("marie@radium.fr")], ..person("Marie", "Curie") })
        },
    ]
}

async fn import(client: &mut common::Client, batches: Vec<ImportCustomersRequest>) -> ImportCustomersResponse {
    client.import_customers(tokio_stream::iter(batches)).await.expect("import").into_inner()
}

fn batches(source: &str, rows: Vec<ImportRow>) -> Vec<ImportCustomersRequest> {
    rows.chunks(4).map(|rows| ImportCustomersRequest { source: source.into(), rows: rows.to_vec() }).collect()
}

#[tokio::test]
async fn rows_are_resolved_bad_ones_reported_and_a_rerun_applies_nothing_twice() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;

    let answer = import(&mut client, batches("list:partners-2024", partner_list())).await;
    let summary = answer.summary.expect("summary");
    assert_eq!(summary.received, 6);
    assert_eq!((summary.created, summary.updated, summary.rejected, summary.duplicates), (2, 2, 2, 0), "{summary:?}");
    assert_eq!((answer.linked_exact, answer.linked_probable), (1, 1));
    let rejected: Vec<(&str, &str)> = summary.errors.iter().map(|e| (e.row_id.as_str(), e.field.as_str())).collect();
    assert_eq!(rejected, [("4", "customer.identifiers[0].value"), ("5", "customer.birth_date")]);

    let customers = client
        .list_customers(ListCustomersRequest { page_size: 100, ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .customers;
    assert_eq!(customers.len(), 2, "Elon once, Marie once");

    // The same file again (an interrupted run resumed): every good row is a duplicate.
    let again = import(&mut client, batches("list:partners-2024", partner_list())).await.summary.expect("summary");
    assert_eq!((again.created, again.updated, again.duplicates, again.rejected), (0, 0, 4, 2), "{again:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn the_stream_must_keep_one_valid_source_and_bounded_batches() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let one = |source: &str| ImportCustomersRequest { source: source.into(), rows: vec![row("1", person("Ada", "L"))] };

    let refused = client.import_customers(tokio_stream::iter(vec![one("")])).await.expect_err("no source");
    assert_invalid(&refused, &["source"]);
    let refused = client.import_customers(tokio_stream::iter(vec![one("bad source!")])).await.expect_err("bad");
    assert_invalid(&refused, &["source"]);
    let switched = vec![one("crm"), one("legacy")];
    let refused = client.import_customers(tokio_stream::iter(switched)).await.expect_err("switched");
    assert_invalid(&refused, &["source"]);
    let empty = ImportCustomersRequest { source: "crm".into(), rows: vec![] };
    let refused = client.import_customers(tokio_stream::iter(vec![empty])).await.expect_err("empty batch");
    assert_invalid(&refused, &["rows"]);
    env.cleanup().await;
}

#[tokio::test]
async fn a_long_upload_is_not_cut_by_the_default_deadline() {
    use tokio_stream::StreamExt as _;
    let env = TestEnv::start_with(&[idic::Target::All], |config| config.server.request_timeout_ms = 300).await;
    let mut client = admin(&env).await;
    // Five messages, 150 ms apart: the upload lasts well beyond 300 ms.
    let people =
        [("Ada", "Lovelace"), ("Alan", "Turing"), ("Grace", "Hopper"), ("Edsger", "Dijkstra"), ("Barbara", "Liskov")];
    let batches: Vec<ImportCustomersRequest> = people
        .iter()
        .enumerate()
        .map(|(i, (given, family))| ImportCustomersRequest {
            source: "crm".into(),
            rows: vec![row(&i.to_string(), person(given, family))],
        })
        .collect();
    let slow = tokio_stream::iter(batches).throttle(std::time::Duration::from_millis(150));
    let answer = client.import_customers(slow).await.expect("a slow upload completes").into_inner();
    assert_eq!(answer.summary.map(|s| s.created), Some(5));
    env.cleanup().await;
}
