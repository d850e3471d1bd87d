//! Bulk ingest through real gRPC, Postgres and Redis: batches of rows are stored in one
//! go, bad rows are rejected and listed without stopping the others, re-sent rows count as
//! duplicates and are never stored twice, and malformed streams are refused whole.

mod common;

use common::{admin, by_email, create_person, identification, interaction, purchase, record, timeline, unique_email};
use idic_proto::{
    common::v1::{BulkSummary, Channel},
    interaction::v1::{IngestInteractionsRequest, InteractionKind, RecordInteractionRequest},
};
use idic_testkit::TestEnv;
use tonic::Code;

async fn ingest(
    client: &mut common::Client,
    batches: Vec<Vec<RecordInteractionRequest>>,
) -> Result<BulkSummary, tonic::Status> {
    let messages: Vec<IngestInteractionsRequest> =
        batches.into_iter().map(|interactions| IngestInteractionsRequest { interactions }).collect();
    let answer = client.ingest_interactions(tokio_stream::iter(messages)).await?.into_inner();
    Ok(answer.summary.expect("summary"))
}

#[tokio::test]
async fn ingest_stores_every_good_row_and_lists_the_bad_ones() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let address = unique_email("ada");
    let ada = create_person(&mut ident, "Ada", &address).await;
    let grace = create_person(&mut ident, "Grace", &unique_email("grace")).await;
    let first: Vec<RecordInteractionRequest> =
        (0..300).map(|i| record(if i % 2 == 0 { &ada } else { &grace }, purchase(i))).collect();
    let mut second: Vec<RecordInteractionRequest> =
        (0..200).map(|i| record(&ada, interaction(InteractionKind::View, Channel::Web, 400 + i))).collect();
    let mut bad = record(&ada, purchase(1));
    bad.interaction.as_mut().expect("interaction").items[1].quantity = -1.0;
    bad.request_id = "bad-quantity".into();
    let mut stranger = record(&ada, purchase(1));
    stranger.customer = by_email(&unique_email("nobody"));
    stranger.request_id = "nobody".into();
    let by_address = RecordInteractionRequest { customer: by_email(&address), ..record(&ada, purchase(2)) };
    let repeated = second[0].clone();
    second.extend([bad, stranger, by_address, repeated]);

    let summary = ingest(&mut client, vec![first, second]).await.expect("ingested");

    assert_eq!(summary.received, 504);
    assert_eq!(summary.created, 501);
    assert_eq!(summary.duplicates, 1, "a row repeated within the stream is stored once");
    assert_eq!(summary.rejected, 2);
    let errors: Vec<(&str, &str)> = summary.errors.iter().map(|e| (e.row_id.as_str(), e.field.as_str())).collect();
    assert_eq!(errors, [("bad-quantity", "interaction.items[1].quantity"), ("nobody", "customer")]);
    assert_eq!(timeline(&mut client, &ada).await.interactions.len(), 150 + 200 + 1);
    assert_eq!(timeline(&mut client, &grace).await.interactions.len(), 150);
    env.cleanup().await;
}

#[tokio::test]
async fn re_sent_rows_are_duplicates_never_stored_twice() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    let rows: Vec<RecordInteractionRequest> = (0..50).map(|i| record(&ada, purchase(i))).collect();
    let single = rows[7].clone();
    client.record_interaction(single).await.expect("one row recorded on its own first");

    let first = ingest(&mut client, vec![rows.clone()]).await.expect("first upload");
    let again = ingest(&mut client, vec![rows[..25].to_vec(), rows[25..].to_vec()]).await.expect("resumed upload");

    assert_eq!((first.created, first.duplicates), (49, 1), "RecordInteraction and ingest share one key space");
    assert_eq!((again.created, again.duplicates, again.rejected), (0, 50, 0));
    assert_eq!(timeline(&mut client, &ada).await.interactions.len(), 50);
    env.cleanup().await;
}

#[tokio::test]
async fn empty_or_oversized_messages_fail_the_stream() {
    let env = TestEnv::monolith().await;
    let (mut client, mut ident) = (admin(&env).await, identification(&env).await);
    let ada = create_person(&mut ident, "Ada", &unique_email("ada")).await;
    let empty = ingest(&mut client, vec![vec![record(&ada, purchase(1))], vec![]]).await.expect_err("empty");
    assert_eq!(empty.code(), Code::InvalidArgument);
    let rows: Vec<RecordInteractionRequest> =
        (0..1001).map(|i| record(&ada, interaction(InteractionKind::View, Channel::Web, i))).collect();
    let oversized = ingest(&mut client, vec![rows]).await.expect_err("oversized");
    assert_eq!(oversized.code(), Code::InvalidArgument);
    assert_eq!(timeline(&mut client, &ada).await.interactions.len(), 1, "messages before the bad one are stored");
    env.cleanup().await;
}
