//! Account managers and their books through real gRPC, Postgres and Redis: the
//! configured default capacity, customers assigned within capacity, books handed over
//! (history staying with the customers), managers leaving, rebalancing within capacity,
//! a book with last contacts and open complaints, and neglected key customers.

mod common;

use std::time::Duration as StdDuration;

use common::{
    Client, admin, assert_invalid, create_person, identification, interaction, record, timeline, unique_email,
};
use idic_proto::{
    common::v1::{Channel, GetJobRequest, Job, JobState},
    interaction::v1::{
        AccountManager, AccountManagerState, AssignCustomersRequest, BookOrder, Complaint, CreateAccountManagerRequest,
        CustomerIdList, DeleteAccountManagerRequest, GetAccountManagerRequest, GetBookRequest, HandOverBookRequest,
        InteractionKind, ListAccountManagersRequest, ListNeglectedCustomersRequest, OpenComplaintRequest,
        RebalanceBooksRequest, UnassignCustomersRequest, UpdateAccountManagerRequest, assign_customers_request,
        assign_customers_response,
    },
};
use idic_testkit::TestEnv;
use prost_types::FieldMask;
use tonic::Code;
use uuid::Uuid;

async fn create_manager(client: &mut Client, id: &str, name: &str, capacity: i32) -> AccountManager {
    let request = CreateAccountManagerRequest {
        request_id: Uuid::new_v4().to_string(),
        account_manager_id: id.to_owned(),
        account_manager: Some(AccountManager { display_name: name.to_owned(), capacity, ..Default::default() }),
    };
    client.create_account_manager(request).await.expect("create manager").into_inner()
}

async fn customers(env: &TestEnv, n: usize) -> Vec<String> {
    let mut identification = identification(env).await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(create_person(&mut identification, &format!("Key{i}"), &unique_email("key")).await);
    }
    ids
}

fn assign_request(manager: &str, customers: &[String], allow_over_capacity: bool) -> AssignCustomersRequest {
    AssignCustomersRequest {
        request_id: Uuid::new_v4().to_string(),
        account_manager: manager.to_owned(),
        selection: Some(assign_customers_request::Selection::Customers(CustomerIdList {
            customer_ids: customers.to_vec(),
        })),
        reassign: false,
        allow_over_capacity,
    }
}

async fn book_size(client: &mut Client, name: &str) -> i32 {
    client
        .get_account_manager(GetAccountManagerRequest { name: name.to_owned() })
        .await
        .expect("get")
        .into_inner()
        .book_size
}

async fn book(client: &mut Client, name: &str) -> Vec<String> {
    let request = GetBookRequest { account_manager: name.to_owned(), page_size: 1000, ..Default::default() };
    let page = client.get_book(request).await.expect("book").into_inner();
    let mut ids: Vec<String> = page.entries.into_iter().map(|e| e.customer_id).collect();
    ids.sort();
    ids
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

#[tokio::test]
async fn managers_get_the_default_capacity_and_unique_ids() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let ada = create_manager(&mut client, "ada", "Ada Byron", 0).await;
    assert_eq!(ada.name, "accountManagers/ada");
    assert_eq!(ada.capacity, 500, "the configured default");
    assert_eq!(ada.state, AccountManagerState::Active as i32);

    let again = CreateAccountManagerRequest {
        request_id: Uuid::new_v4().to_string(),
        account_manager_id: "ada".into(),
        account_manager: Some(AccountManager { display_name: "Other".into(), ..Default::default() }),
    };
    assert_eq!(client.create_account_manager(again).await.expect_err("taken id").code(), Code::AlreadyExists);
    let bad = CreateAccountManagerRequest {
        request_id: String::new(),
        account_manager_id: "9-lives".into(),
        account_manager: Some(AccountManager { capacity: 200_000, ..Default::default() }),
    };
    let status = client.create_account_manager(bad).await.expect_err("invalid");
    assert_invalid(
        &status,
        &["request_id", "account_manager_id", "account_manager.display_name", "account_manager.capacity"],
    );

    let update = UpdateAccountManagerRequest {
        account_manager: Some(AccountManager { name: ada.name.clone(), capacity: 2, ..Default::default() }),
        update_mask: Some(FieldMask { paths: vec!["capacity".into()] }),
    };
    assert_eq!(client.update_account_manager(update).await.expect("update").into_inner().capacity, 2);
    create_manager(&mut client, "bob", "Bob Babbage", 10).await;
    let listed = client.list_account_managers(ListAccountManagersRequest::default()).await.expect("list").into_inner();
    let names: Vec<&str> = listed.account_managers.iter().map(|m| m.display_name.as_str()).collect();
    assert_eq!(names, ["Ada Byron", "Bob Babbage"]);
    env.cleanup().await;
}

#[tokio::test]
async fn assignment_respects_capacity_and_hand_over_moves_the_book_keeping_history() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let key = customers(&env, 4).await;
    let ada = create_manager(&mut client, "ada", "Ada", 3).await;
    let bob = create_manager(&mut client, "bob", "Bob", 5).await;
    client
        .record_interaction(record(&key[0], interaction(InteractionKind::InboundCall, Channel::CallCentre, 30)))
        .await
        .expect("call");

    let answer = client.assign_customers(assign_request(&ada.name, &key, false)).await.expect("assign").into_inner();
    let Some(assign_customers_response::Outcome::Summary(summary)) = answer.outcome else { panic!("a summary") };
    assert_eq!((summary.requested, summary.assigned, summary.refused_over_capacity), (4, 3, 1));
    assert_eq!(book(&mut client, &ada.name).await, sorted(&key[..3]));

    // Bob has room for the whole book: it moves, the history stays with the customers.
    let hand_over = HandOverBookRequest {
        request_id: Uuid::new_v4().to_string(),
        from_account_manager: ada.name.clone(),
        to_account_manager: bob.name.clone(),
        customers: None,
        allow_over_capacity: false,
        reason: "Ada moves to the Paris office".into(),
    };
    let moved = client.hand_over_book(hand_over).await.expect("hand over").into_inner();
    assert_eq!(moved.moved, 3);
    assert_eq!((moved.receivers[0].account_manager.as_str(), moved.receivers[0].count), (bob.name.as_str(), 3));
    assert_eq!(book(&mut client, &bob.name).await, sorted(&key[..3]));
    assert!(book(&mut client, &ada.name).await.is_empty());
    assert_eq!(timeline(&mut client, &key[0]).await.interactions.len(), 1);

    // Ada with capacity 2 cannot take Bob's 3 back: nothing moves.
    let back = || HandOverBookRequest {
        request_id: Uuid::new_v4().to_string(),
        from_account_manager: bob.name.clone(),
        to_account_manager: ada.name.clone(),
        customers: None,
        allow_over_capacity: false,
        reason: String::new(),
    };
    let update = UpdateAccountManagerRequest {
        account_manager: Some(AccountManager { name: ada.name.clone(), capacity: 2, ..Default::default() }),
        update_mask: Some(FieldMask { paths: vec!["capacity".into()] }),
    };
    client.update_account_manager(update).await.expect("lower capacity");
    assert_eq!(client.hand_over_book(back()).await.expect_err("no room").code(), Code::FailedPrecondition);
    assert_eq!(book_size(&mut client, &bob.name).await, 3);

    // Bob leaves: his book is spread over the others within their capacity.
    let cy = create_manager(&mut client, "cy", "Cy", 1).await;
    let leave = DeleteAccountManagerRequest {
        name: bob.name.clone(),
        hand_over_to: String::new(),
        allow_over_capacity: false,
        reason: "retired".into(),
    };
    let left = client.delete_account_manager(leave).await.expect("delete").into_inner();
    assert_eq!((left.state, left.book_size), (AccountManagerState::Inactive as i32, 0));
    assert!(left.deactivate_time.is_some());
    assert_eq!((book_size(&mut client, &ada.name).await, book_size(&mut client, &cy.name).await), (2, 1));
    let mut everyone = book(&mut client, &ada.name).await;
    everyone.extend(book(&mut client, &cy.name).await);
    assert_eq!(sorted(&everyone), sorted(&key[..3]));
    let unassign = UnassignCustomersRequest { customers: Some(CustomerIdList { customer_ids: vec![key[3].clone()] }) };
    let out = client.unassign_customers(unassign).await.expect("unassign").into_inner();
    assert_eq!((out.unassigned, out.not_assigned), (0, 1));
    env.cleanup().await;
}

async fn wait_for_job(client: &mut Client, job: &Job) -> Job {
    for _ in 0..200 {
        let now = client.get_job(GetJobRequest { name: job.name.clone() }).await.expect("job").into_inner();
        if now.state == JobState::Succeeded as i32 || now.state == JobState::Failed as i32 {
            return now;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    panic!("the job did not finish");
}

fn number(job: &Job, field: &str) -> f64 {
    match job.result.as_ref().and_then(|r| r.fields.get(field)).and_then(|v| v.kind.as_ref()) {
        Some(prost_types::value::Kind::NumberValue(n)) => *n,
        other => panic!("{field}: {other:?}"),
    }
}

#[tokio::test]
async fn rebalancing_brings_every_book_within_capacity_moving_the_fewest() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let key = customers(&env, 8).await;
    let ada = create_manager(&mut client, "ada", "Ada", 4).await;
    let bob = create_manager(&mut client, "bob", "Bob", 4).await;
    let cy = create_manager(&mut client, "cy", "Cy", 8).await;
    client.assign_customers(assign_request(&ada.name, &key, true)).await.expect("assign over capacity");
    let over = client
        .list_account_managers(ListAccountManagersRequest { only_over_capacity: true, ..Default::default() })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(over.account_managers.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), [ada.name.as_str()]);

    let dry = RebalanceBooksRequest { request_id: Uuid::new_v4().to_string(), dry_run: true, ..Default::default() };
    let dry = client.rebalance_books(dry).await.expect("dry run").into_inner();
    let dry = wait_for_job(&mut client, &dry).await;
    assert_eq!(number(&dry, "moved"), 6.0);
    assert_eq!(book_size(&mut client, &ada.name).await, 8, "a dry run moves nothing");

    let request = RebalanceBooksRequest { request_id: Uuid::new_v4().to_string(), ..Default::default() };
    let job = client.rebalance_books(request).await.expect("rebalance").into_inner();
    assert_eq!(job.kind, "interaction.rebalance_books");
    let done = wait_for_job(&mut client, &job).await;
    assert_eq!(done.state, JobState::Succeeded as i32, "{}", done.error_message);
    // 8 customers over capacities 4, 4, 8: each at half capacity, 2, 2 and 4; six move.
    assert_eq!((number(&done, "moved"), number(&done, "remaining_over_capacity")), (6.0, 0.0));
    let sizes = (
        book_size(&mut client, &ada.name).await,
        book_size(&mut client, &bob.name).await,
        book_size(&mut client, &cy.name).await,
    );
    assert_eq!(sizes, (2, 2, 4));
    env.cleanup().await;
}

#[tokio::test]
async fn the_book_shows_last_contacts_and_open_complaints_and_lists_the_neglected() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let key = customers(&env, 3).await;
    let ada = create_manager(&mut client, "ada", "Ada", 10).await;
    client.assign_customers(assign_request(&ada.name, &key, false)).await.expect("assign");
    // key[0] was called 40 days ago, key[1] yesterday and complained; key[2] never contacted.
    let old_call = interaction(InteractionKind::InboundCall, Channel::CallCentre, 40 * 24 * 60);
    client.record_interaction(record(&key[0], old_call)).await.expect("old call");
    let recent = interaction(InteractionKind::InboundCall, Channel::CallCentre, 24 * 60);
    client.record_interaction(record(&key[1], recent)).await.expect("recent call");
    let complaint = OpenComplaintRequest {
        request_id: Uuid::new_v4().to_string(),
        customer: common::by_id(&key[1]),
        complaint: Some(Complaint {
            category: "billing".into(),
            channel: Channel::CallCentre as i32,
            summary: "Charged twice".into(),
            ..Default::default()
        }),
    };
    let complaint = client.open_complaint(complaint).await.expect("complaint").into_inner();

    let request = GetBookRequest {
        account_manager: ada.name.clone(),
        order_by: BookOrder::LastContactAsc as i32,
        ..Default::default()
    };
    let page = client.get_book(request).await.expect("book").into_inner();
    assert_eq!(page.total_size, 3);
    let order: Vec<&str> = page.entries.iter().map(|e| e.customer_id.as_str()).collect();
    // Never contacted first, then the oldest contact; key[1]'s complaint is its last contact.
    assert_eq!(order, [key[2].as_str(), key[0].as_str(), key[1].as_str()]);
    assert!(page.entries[0].last_contact.is_none());
    assert_eq!(page.entries[2].open_complaints, std::slice::from_ref(&complaint.name));
    assert_eq!(page.entries[2].last_contact.as_ref().map(|c| c.kind), Some(InteractionKind::Complaint as i32));

    let neglected = ListNeglectedCustomersRequest {
        not_contacted_within: Some(prost_types::Duration { seconds: 30 * 86_400, nanos: 0 }),
        ..Default::default()
    };
    let neglected = client.list_neglected_customers(neglected).await.expect("neglected").into_inner();
    let ids: Vec<&str> = neglected.customers.iter().map(|c| c.customer_id.as_str()).collect();
    assert_eq!(ids, [key[2].as_str(), key[0].as_str()]);
    assert_eq!(neglected.total_size, 2);
    let missing = ListNeglectedCustomersRequest::default();
    assert_invalid(&client.list_neglected_customers(missing).await.expect_err("period"), &["not_contacted_within"]);
    env.cleanup().await;
}
