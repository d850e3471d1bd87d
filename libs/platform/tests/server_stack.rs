//! The shared server stack over real gRPC: health for every service, authentication
//! and scopes, UNIMPLEMENTED for RPCs whose feature has not landed, request ids, the
//! shared job RPCs, and the same behaviour in monolithic and microservices mode.

use idic::Target;
use idic_proto::{
    common::v1::{GetJobRequest, ListJobsRequest},
    customization::v1::{GetServiceLevelsRequest, customization_service_client::CustomizationServiceClient},
    identification::v1::{GetCustomerRequest, identification_service_client::IdentificationServiceClient},
    segmentation::v1::segmentation_service_client::SegmentationServiceClient,
};
use idic_testkit::{TestEnv, tokens};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

async fn assert_every_service_serving(env: &TestEnv) {
    for (target, service) in Target::SERVICES.into_iter().zip(idic_proto::SERVICE_NAMES) {
        let mut health = HealthClient::new(env.channel(target).await);
        let status = health
            .check(HealthCheckRequest { service: service.to_owned() })
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"))
            .into_inner();
        assert_eq!(status.status(), ServingStatus::Serving, "{service}");
    }
}

#[tokio::test]
async fn every_service_reports_serving_in_monolithic_mode() {
    let env = TestEnv::monolith().await;
    assert_every_service_serving(&env).await;
    env.cleanup().await;
}

#[tokio::test]
async fn every_service_reports_serving_in_microservices_mode() {
    let env = TestEnv::microservices().await;
    assert_every_service_serving(&env).await;
    // Each server runs only its own service.
    let mut health = HealthClient::new(env.channel(Target::Segmentation).await);
    let other = health
        .check(HealthCheckRequest { service: idic_proto::SERVICE_NAMES[0].to_owned() })
        .await
        .expect_err("identification is not served by the segmentation process");
    assert_eq!(other.code(), Code::NotFound);
    env.cleanup().await;
}

#[tokio::test]
async fn callers_need_a_known_token_and_the_rpc_scope() {
    let env = TestEnv::monolith().await;
    let request = || GetCustomerRequest { name: format!("customers/{}", uuid::Uuid::new_v4()) };

    let mut anonymous = IdentificationServiceClient::new(env.channel(Target::Identification).await);
    assert_eq!(anonymous.get_customer(request()).await.expect_err("no token").code(), Code::Unauthenticated);

    let mut stranger =
        IdentificationServiceClient::new(env.authorized(Target::Identification, "not-a-known-token-000").await);
    assert_eq!(stranger.get_customer(request()).await.expect_err("bad token").code(), Code::Unauthenticated);

    let mut scopeless =
        IdentificationServiceClient::new(env.authorized(Target::Identification, tokens::NO_SCOPES).await);
    let denied = scopeless.get_customer(request()).await.expect_err("no scope");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("profiles.read"), "{}", denied.message());

    let mut reader =
        IdentificationServiceClient::new(env.authorized(Target::Identification, tokens::PROFILE_READER).await);
    let allowed = reader.get_customer(request()).await.expect_err("unknown customer");
    assert_eq!(allowed.code(), Code::NotFound, "authorised: the RPC itself answers");
    env.cleanup().await;
}

#[tokio::test]
async fn rpcs_whose_feature_has_not_landed_answer_unimplemented() {
    let env = TestEnv::monolith().await;
    let mut customization = CustomizationServiceClient::new(env.authorized(Target::Customization, tokens::ADMIN).await);
    let status =
        customization.get_service_levels(GetServiceLevelsRequest::default()).await.expect_err("not implemented yet");
    assert_eq!(status.code(), Code::Unimplemented);
    env.cleanup().await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let env = TestEnv::monolith().await;
    let mut client = IdentificationServiceClient::new(env.authorized(Target::Identification, tokens::ADMIN).await);
    let mut request = tonic::Request::new(ListJobsRequest::default());
    request.metadata_mut().insert("x-request-id", "trace-me-42".parse().expect("header"));
    let response = client.list_jobs(request).await.expect("list jobs");
    assert_eq!(response.metadata().get("x-request-id").and_then(|v| v.to_str().ok()), Some("trace-me-42"));

    let generated = client.list_jobs(ListJobsRequest::default()).await.expect("list jobs");
    let id = generated.metadata().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "generated request id {id:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn shared_job_rpcs_validate_and_page() {
    let env = TestEnv::monolith().await;
    let pool = env.pool("segmentation").await;
    let jobs = idic_platform::jobs::Jobs::new(pool.clone());
    for _ in 0..3 {
        jobs.create("segmentation.rescore", "test", serde_json::json!({})).await.expect("job");
    }
    let mut client = SegmentationServiceClient::new(env.authorized(Target::Segmentation, tokens::ADMIN).await);
    let first =
        client.list_jobs(ListJobsRequest { page_size: 2, ..Default::default() }).await.expect("page 1").into_inner();
    assert_eq!(first.jobs.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_jobs(ListJobsRequest { page_size: 2, page_token: first.next_page_token.clone(), ..Default::default() })
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(second.jobs.len(), 1);
    assert!(second.next_page_token.is_empty());
    let all: Vec<_> = first.jobs.iter().chain(&second.jobs).map(|j| j.name.clone()).collect();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0] != w[1]));

    let other_filter = client
        .list_jobs(ListJobsRequest { page_size: 2, page_token: first.next_page_token, kind: "other".into() })
        .await
        .expect_err("token of another filter");
    assert_eq!(other_filter.code(), Code::InvalidArgument);
    let too_big =
        client.list_jobs(ListJobsRequest { page_size: 5000, ..Default::default() }).await.expect_err("page size");
    assert_eq!(too_big.code(), Code::InvalidArgument);
    let got = client.get_job(GetJobRequest { name: all[0].clone() }).await.expect("get").into_inner();
    assert_eq!(got.kind, "segmentation.rescore");
    pool.close().await;
    env.cleanup().await;
}
