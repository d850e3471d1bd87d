//! The consent ledger through real gRPC, Postgres and Redis: grants and withdrawals
//! decide the effective consent, the ledger keeps every record, each change is audited
//! and published as `consent.changed`, and bad requests name their field.

mod common;

use common::{
    Client, admin, assert_invalid, audit_entries, create, email, marketing_consent as consent, next_event, person,
    unique_email,
};
use idic_proto::{
    common::v1::{Channel, ConsentPurpose},
    identification::v1::{
        self as pb, ConsentBasis, ConsentStatus, Customer, GetConsentsRequest, ListConsentHistoryRequest,
        RecordConsentRequest,
    },
};
use idic_testkit::{TestEnv, tokens};
use tonic::Code;

async fn customer(client: &mut Client) -> String {
    let identifiers = vec![email(&unique_email("grace@navy-history.org"))];
    create(client, Customer { identifiers, ..person("Grace", "Hopper") }).await.name
}

async fn email_marketing(client: &mut Client, parent: &str) -> pb::Consent {
    let request = GetConsentsRequest {
        parent: parent.to_owned(),
        purpose: ConsentPurpose::Marketing as i32,
        channel: Channel::Email as i32,
    };
    let consents = client.get_consents(request).await.expect("consents").into_inner().consents;
    consents.into_iter().find(|c| c.channel == Channel::Email as i32).expect("email marketing answered")
}

#[tokio::test]
async fn grant_then_withdrawal_decides_email_marketing() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let parent = customer(&mut client).await;

    let before = email_marketing(&mut client, &parent).await;
    assert!(!before.allowed, "marketing email needs permission first");
    assert_eq!(before.basis, ConsentBasis::Default as i32);

    let grant = client.record_consent(consent(&parent, Channel::Email, ConsentStatus::Granted)).await.expect("grant");
    let grant = grant.into_inner();
    assert!(grant.name.starts_with(&format!("{parent}/consentRecords/")));
    assert_eq!(grant.recorded_by, "test-admin");
    let granted = email_marketing(&mut client, &parent).await;
    assert!(granted.allowed);
    assert_eq!((granted.basis, granted.record.as_str()), (ConsentBasis::Recorded as i32, grant.name.as_str()));

    // Withdrawing everywhere also stops email.
    let mut withdraw = consent(&parent, Channel::Unspecified, ConsentStatus::Withdrawn);
    withdraw.purpose_statement.clear();
    client.record_consent(withdraw).await.expect("withdraw");
    let withdrawn = email_marketing(&mut client, &parent).await;
    assert!(!withdrawn.allowed);
    assert_eq!(withdrawn.basis, ConsentBasis::AllChannels as i32);

    let history = client
        .list_consent_history(ListConsentHistoryRequest { parent: parent.clone(), ..Default::default() })
        .await
        .expect("history")
        .into_inner();
    let statuses: Vec<i32> = history.records.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [ConsentStatus::Withdrawn as i32, ConsentStatus::Granted as i32], "newest first");

    let audit = audit_entries(&mut client, &parent).await;
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|e| e.action == "RecordConsent" && e.caller == "test-admin"));
    env.cleanup().await;
}

#[tokio::test]
async fn each_change_is_published_as_consent_changed() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let parent = customer(&mut client).await;
    client.record_consent(consent(&parent, Channel::Sms, ConsentStatus::Granted)).await.expect("grant");

    let event: pb::ConsentChanged = next_event(&env, "consent.changed").await;
    assert_eq!(format!("customers/{}", event.customer_id), parent);
    assert_eq!(event.channel, Channel::Sms as i32);
    assert_eq!(event.status, ConsentStatus::Granted as i32);
    assert!(event.allowed);
    assert!(!event.event_id.is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn a_retried_record_is_stored_once() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let parent = customer(&mut client).await;
    let mut request = consent(&parent, Channel::Email, ConsentStatus::Granted);
    request.request_id = "consent-form-8812".into();
    let first = client.record_consent(request.clone()).await.expect("first").into_inner();
    let again = client.record_consent(request).await.expect("retry").into_inner();
    assert_eq!(first, again);
    let history = client
        .list_consent_history(ListConsentHistoryRequest { parent, ..Default::default() })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(history.records.len(), 1);
    env.cleanup().await;
}

#[tokio::test]
async fn bad_consent_requests_name_the_field() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let parent = customer(&mut client).await;
    let past = prost_types::Timestamp { seconds: 1_000_000_000, nanos: 0 };
    let cases: Vec<(RecordConsentRequest, &str)> = vec![
        (RecordConsentRequest { purpose: 0, ..consent(&parent, Channel::Email, ConsentStatus::Granted) }, "purpose"),
        (RecordConsentRequest { status: 0, ..consent(&parent, Channel::Email, ConsentStatus::Granted) }, "status"),
        (
            RecordConsentRequest {
                purpose_statement: String::new(),
                ..consent(&parent, Channel::Email, ConsentStatus::Granted)
            },
            "purpose_statement",
        ),
        (RecordConsentRequest { channel: 99, ..consent(&parent, Channel::Email, ConsentStatus::Granted) }, "channel"),
        (
            RecordConsentRequest {
                expire_time: Some(past),
                ..consent(&parent, Channel::Email, ConsentStatus::Granted)
            },
            "expire_time",
        ),
        (
            RecordConsentRequest {
                parent: "customers/x".into(),
                ..consent(&parent, Channel::Email, ConsentStatus::Granted)
            },
            "parent",
        ),
        (
            RecordConsentRequest {
                provenance: Some(pb::Provenance { source: "bad source!".into(), ..Default::default() }),
                ..consent(&parent, Channel::Email, ConsentStatus::Granted)
            },
            "provenance.source",
        ),
    ];
    for (request, field) in cases {
        let status = client.record_consent(request).await.expect_err(field);
        assert_invalid(&status, &[field]);
    }
    let unknown = format!("customers/{}", uuid::Uuid::new_v4());
    let status =
        client.record_consent(consent(&unknown, Channel::Email, ConsentStatus::Granted)).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);

    let mut reader = common::client(&env, tokens::PROFILE_READER).await;
    let denied =
        reader.record_consent(consent(&parent, Channel::Email, ConsentStatus::Granted)).await.expect_err("scope");
    assert_eq!(denied.code(), Code::PermissionDenied);
    env.cleanup().await;
}
