//! Recommendations through the real servers against real Postgres and Redis: purchases and
//! views recorded in interaction reach customization as `interaction.recorded` events and
//! give items neighbours before any retraining; a guest with a basket gets what goes with it;
//! a customer's history is used, owned items and refused items left out; profiling consent
//! withdrawn makes a customer a guest; retraining is a job; merges re-key and erasures remove
//! what was learned; bad requests name their field.

use std::time::Duration;

use idic::Target;
use idic_platform::{events::Consumer, jobs::timestamp};
use idic_proto::{
    common::v1::{
        Channel, ConsentPurpose, CustomerRef, ErasureConfirmed, GetJobRequest, Identifier, IdentifierKind, JobState,
        Money, customer_ref,
    },
    customization::v1::{
        self as pb, CreateProductRequest, FeedbackKind, GetItemNeighboursRequest, ProductRef, ReasonKind,
        RecommendRequest, RecommendationContext, RecommendationStrategy, RecordRecommendationFeedbackRequest,
        StartRetrainingRequest, customization_service_client::CustomizationServiceClient, product_ref,
    },
    identification::v1::{
        ConsentStatus, CreateCustomerRequest, Customer, CustomerKind, EraseCustomerRequest, MergeCustomersRequest,
        RecordConsentRequest, identification_service_client::IdentificationServiceClient,
    },
    interaction::v1::{
        Interaction, InteractionKind, ItemLine, RecordInteractionRequest,
        interaction_service_client::InteractionServiceClient,
    },
};
use idic_testkit::{Bearer, TestEnv, assert_invalid, eventually, tokens};
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel as GrpcChannel};
use uuid::Uuid;

type Client = CustomizationServiceClient<InterceptedService<GrpcChannel, Bearer>>;

struct World {
    env: TestEnv,
    customization: Client,
    identification: IdentificationServiceClient<InterceptedService<GrpcChannel, Bearer>>,
    interaction: InteractionServiceClient<InterceptedService<GrpcChannel, Bearer>>,
}

async fn start() -> World {
    let env = TestEnv::monolith().await;
    let customization = CustomizationServiceClient::new(env.authorized(Target::Customization, tokens::ADMIN).await);
    let identification = IdentificationServiceClient::new(env.authorized(Target::Identification, tokens::ADMIN).await);
    let interaction = InteractionServiceClient::new(env.authorized(Target::Interaction, tokens::ADMIN).await);
    World { env, customization, identification, interaction }
}

impl World {
    /// Creates products with these client ids (`jeans`, `belt`, ...) in category `apparel/<id>`.
    async fn products(&mut self, ids: &[&str]) {
        for id in ids {
            let product = pb::Product {
                sku: format!("SKU-{id}"),
                title: format!("The {id}"),
                categories: vec![format!("apparel/{id}")],
                price: Some(Money { currency_code: "EUR".into(), amount_minor: 2500 }),
                ..Default::default()
            };
            self.customization
                .create_product(CreateProductRequest {
                    product_id: (*id).to_owned(),
                    product: Some(product),
                    request_id: String::new(),
                })
                .await
                .expect("create product");
        }
    }

    async fn customer(&mut self, name: &str) -> String {
        let email = format!("{name}.{}@analytical-engine.co.uk", Uuid::new_v4().simple());
        let customer = Customer {
            kind: CustomerKind::Person as i32,
            given_name: name.to_owned(),
            identifiers: vec![Identifier {
                kind: IdentifierKind::Email as i32,
                value: email,
                namespace: String::new(),
            }],
            ..Default::default()
        };
        let request = CreateCustomerRequest { customer: Some(customer), request_id: String::new(), provenance: None };
        let created = self.identification.create_customer(request).await.expect("create customer").into_inner();
        created.name.trim_start_matches("customers/").to_owned()
    }

    /// Records that `customer` did `kind` with `products`, `days_ago` days ago.
    async fn did(&mut self, customer: &str, kind: InteractionKind, products: &[&str], days_ago: i64) {
        let at = chrono::Utc::now() - chrono::Duration::days(days_ago);
        let interaction = Interaction {
            kind: kind as i32,
            channel: Channel::Web as i32,
            occur_time: Some(timestamp(at)),
            items: products
                .iter()
                .map(|p| ItemLine {
                    product_id: (*p).to_owned(),
                    quantity: 1.0,
                    unit_price: Some(Money { currency_code: "EUR".into(), amount_minor: 2500 }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        self.interaction
            .record_interaction(RecordInteractionRequest {
                request_id: Uuid::new_v4().to_string(),
                customer: by_id(customer),
                interaction: Some(interaction),
                create_missing_customer: false,
                enforce_contact_policy: false,
            })
            .await
            .expect("record interaction");
    }

    async fn recommend(&mut self, request: RecommendRequest) -> pb::RecommendResponse {
        self.customization.recommend(request).await.expect("recommend").into_inner()
    }

    /// Waits until `customer`'s recommendations (no context) satisfy `check`.
    async fn recommendations_until(
        &mut self,
        what: &str,
        request: RecommendRequest,
        check: impl Fn(&pb::RecommendResponse) -> bool,
    ) -> pb::RecommendResponse {
        let client = self.customization.clone();
        eventually(what, || {
            let (mut client, request) = (client.clone(), request.clone());
            let check = &check;
            async move {
                let answer = client.recommend(request).await.expect("recommend").into_inner();
                check(&answer).then_some(answer)
            }
        })
        .await
    }
}

/// Waits until the feedback log holds `rows` rows (every event of the shop consumed).
async fn learned(world: &World, rows: i64) {
    let pool = world.env.pool("customization").await;
    eventually("the feedback log to fill", || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM item_feedback").fetch_one(&pool).await.ok()?;
            (n == rows).then_some(())
        }
    })
    .await;
}

fn by_id(id: &str) -> Option<CustomerRef> {
    Some(CustomerRef { r#ref: Some(customer_ref::Ref::CustomerId(id.to_owned())) })
}

fn product(id: &str) -> Option<ProductRef> {
    Some(ProductRef { r#ref: Some(product_ref::Ref::Product(format!("products/{id}"))) })
}

fn products_of(answer: &pb::RecommendResponse) -> Vec<String> {
    answer.items.iter().map(|i| i.product.trim_start_matches("products/").to_owned()).collect()
}

/// Three customers buy jeans with a belt; two buy a hat with a scarf; one views socks with
/// the jeans. Returns the customers in that order.
async fn shop(world: &mut World) -> Vec<String> {
    world.products(&["jeans", "belt", "socks", "hat", "scarf"]).await;
    let mut customers = Vec::new();
    for (i, name) in ["ada", "bob", "cy", "di", "ed", "flo"].iter().enumerate() {
        let c = world.customer(name).await;
        match i {
            0..=2 => world.did(&c, InteractionKind::Purchase, &["jeans", "belt"], 10).await,
            3 | 4 => world.did(&c, InteractionKind::Purchase, &["hat", "scarf"], 10).await,
            _ => world.did(&c, InteractionKind::View, &["jeans", "socks"], 3).await,
        }
        customers.push(c);
    }
    customers
}

#[tokio::test]
async fn a_guest_with_a_basket_gets_what_was_bought_with_it_before_any_retraining() {
    let mut world = start().await;
    shop(&mut world).await;
    let request = RecommendRequest {
        context: Some(RecommendationContext {
            basket: vec![pb::BasketItem { product: product("jeans"), quantity: 1 }],
            ..Default::default()
        }),
        n: 3,
        ..Default::default()
    };
    let answer = world
        .recommendations_until("the belt, then the socks, to go with the jeans", request, |a| {
            products_of(a).starts_with(&["belt".to_owned(), "socks".to_owned()])
        })
        .await;
    let belt = &answer.items[0];
    assert_eq!(belt.strategy, RecommendationStrategy::Basket as i32);
    let reason = belt.reason.as_ref().expect("reason");
    assert_eq!(reason.kind, ReasonKind::GoesWithBasket as i32);
    assert_eq!(reason.anchor_products, vec!["products/jeans".to_owned()]);
    assert_eq!(reason.text, "Goes with The jeans in your basket");
    assert_eq!(belt.sku, "SKU-belt");
    assert!(!answer.personalized, "a guest is never personalised");
    assert!(answer.customer_id.is_empty());
    assert!(answer.recommendation.starts_with("recommendations/"));
    assert!(!products_of(&answer).contains(&"jeans".to_owned()), "the basket is not recommended back");
    // Socks were only viewed with the jeans: they come after what was bought with them.
    assert_eq!(products_of(&answer)[1], "socks");
    world.env.cleanup().await;
}

#[tokio::test]
async fn history_is_used_and_owned_or_refused_items_are_left_out() {
    let mut world = start().await;
    let customers = shop(&mut world).await;
    let ada = customers[0].clone();
    world.did(&ada, InteractionKind::Purchase, &["jeans"], 1).await;
    let for_ada = RecommendRequest { customer: by_id(&ada), n: 5, ..Default::default() };
    let answer = world
        .recommendations_until("Ada's history to be used", for_ada.clone(), |a| {
            a.personalized && products_of(a).first().is_some_and(|p| p == "socks")
        })
        .await;
    let owned = products_of(&answer);
    assert!(!owned.contains(&"jeans".to_owned()) && !owned.contains(&"belt".to_owned()), "owned: {owned:?}");
    assert_eq!(owned[0], "socks", "what goes with her jeans comes first: {owned:?}");
    let reason = answer.items[0].reason.as_ref().expect("reason");
    assert_eq!(reason.kind, ReasonKind::BecauseYouBought as i32);
    assert_eq!(answer.customer_id, ada);

    let refusal = RecordRecommendationFeedbackRequest {
        customer: by_id(&ada),
        product: product("socks"),
        kind: FeedbackKind::NotInterested as i32,
        recommendation: answer.recommendation.clone(),
        suppress_for: None,
        time: None,
        request_id: Uuid::new_v4().to_string(),
    };
    let stored = world.customization.record_recommendation_feedback(refusal.clone()).await.expect("feedback");
    let stored = stored.into_inner();
    assert!(!stored.duplicate);
    assert!(stored.suppressed_until.is_some());
    let again = world.customization.record_recommendation_feedback(refusal).await.expect("retry").into_inner();
    assert!(again.duplicate, "a retry answers the first reaction");
    assert_eq!(again.suppressed_until, stored.suppressed_until);
    let after = world.recommend(for_ada).await;
    assert!(!products_of(&after).contains(&"socks".to_owned()), "refused socks came back: {:?}", products_of(&after));

    let unknown = RecordRecommendationFeedbackRequest {
        customer: by_id(&ada),
        product: product("socks"),
        kind: FeedbackKind::Clicked as i32,
        recommendation: format!("recommendations/{}", Uuid::new_v4()),
        suppress_for: None,
        time: None,
        request_id: String::new(),
    };
    let refused = world.customization.record_recommendation_feedback(unknown).await.expect_err("no such answer");
    assert_eq!(refused.code(), Code::NotFound);
    world.env.cleanup().await;
}

#[tokio::test]
async fn a_customer_without_profiling_consent_is_served_like_a_guest() {
    let mut world = start().await;
    let customers = shop(&mut world).await;
    let ada = customers[0].clone();
    let for_ada = RecommendRequest { customer: by_id(&ada), n: 5, ..Default::default() };
    world.recommendations_until("Ada's history", for_ada.clone(), |a| a.personalized).await;
    world
        .identification
        .record_consent(RecordConsentRequest {
            parent: format!("customers/{ada}"),
            purpose: ConsentPurpose::Profiling as i32,
            channel: Channel::Unspecified as i32,
            status: ConsentStatus::Withdrawn as i32,
            purpose_statement: "To tailor what we show you".into(),
            request_id: Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await
        .expect("withdraw profiling");
    let answer = world.recommendations_until("the withdrawal to apply", for_ada, |a| !a.personalized).await;
    assert!(answer.items.iter().all(|i| i.strategy == RecommendationStrategy::GlobalPopularity as i32));
    assert!(!answer.items.is_empty());
    assert_eq!(answer.customer_id, ada, "she is still known, only her history is not used");
    world.env.cleanup().await;
}

#[tokio::test]
async fn retraining_is_a_job_whose_neighbours_are_served() {
    let mut world = start().await;
    shop(&mut world).await;
    // Wait for the events to be learned, so the retraining sees them.
    learned(&world, 12).await;
    let request =
        StartRetrainingRequest { neighbours_per_item: 20, request_id: "retrain-1".into(), ..Default::default() };
    let job = world.customization.start_retraining(request.clone()).await.expect("start").into_inner();
    let replay = world.customization.start_retraining(request).await.expect("replay").into_inner();
    assert_eq!(replay.name, job.name, "a retry answers the same job");
    let done = eventually("the retraining to succeed", || {
        let mut client = world.customization.clone();
        let name = job.name.clone();
        async move {
            let j = client.get_job(GetJobRequest { name }).await.expect("get job").into_inner();
            assert_ne!(j.state, JobState::Failed as i32, "{}", j.error_message);
            (j.state == JobState::Succeeded as i32).then_some(j)
        }
    })
    .await;
    let result = done.result.expect("result");
    let interactions = result.fields.get("interactions").and_then(|v| match v.kind {
        Some(prost_types::value::Kind::NumberValue(n)) => Some(n),
        _ => None,
    });
    assert_eq!(interactions, Some(12.0));

    let neighbours = world
        .customization
        .get_item_neighbours(GetItemNeighboursRequest { product: product("jeans"), n: 5, ..Default::default() })
        .await
        .expect("neighbours")
        .into_inner();
    assert!(neighbours.model_time.is_some());
    let first = &neighbours.neighbours[0];
    assert_eq!((first.product.as_str(), first.support), ("products/belt", 3));
    assert_eq!(first.relation, pb::NeighbourRelation::BoughtTogether as i32);
    assert!(first.similarity > 0.5 && first.similarity <= 1.0);
    let viewed = world
        .customization
        .get_item_neighbours(GetItemNeighboursRequest {
            product: product("jeans"),
            relation: pb::NeighbourRelation::ViewedTogether as i32,
            ..Default::default()
        })
        .await
        .expect("viewed together")
        .into_inner();
    assert_eq!(viewed.neighbours.iter().map(|n| n.product.as_str()).collect::<Vec<_>>(), vec!["products/socks"]);
    world.env.cleanup().await;
}

#[tokio::test]
async fn a_merge_moves_what_was_learned_to_the_survivor_and_an_erasure_removes_it() {
    let mut world = start().await;
    let customers = shop(&mut world).await;
    let (di, flo) = (customers[3].clone(), customers[5].clone());
    learned(&world, 12).await;
    world
        .identification
        .merge_customers(MergeCustomersRequest {
            survivor: format!("customers/{flo}"),
            merged_customers: vec![format!("customers/{di}")],
            reason: "the same person".into(),
            override_cannot_link: false,
            request_id: String::new(),
        })
        .await
        .expect("merge");
    // Flo now owns Di's hat and scarf: neither is recommended to her.
    let for_flo = RecommendRequest { customer: by_id(&flo), n: 5, ..Default::default() };
    let answer = world
        .recommendations_until("the merge to apply", for_flo, |a| {
            let p = products_of(a);
            a.personalized && !p.is_empty() && !p.contains(&"hat".to_owned()) && !p.contains(&"scarf".to_owned())
        })
        .await;
    assert!(answer.personalized);
    let pool = world.env.pool("customization").await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM item_feedback WHERE customer_id = $1")
        .bind(Uuid::parse_str(&flo).expect("uuid"))
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(rows, 4, "her own two views and Di's two purchases");

    let (sender, mut confirmations) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let consumer = Consumer::new(world.env.redis(), "erasure.confirmed", "test", "test");
    tokio::spawn(consumer.run(
        move |d| {
            let sender = sender.clone();
            async move {
                sender.send(ErasureConfirmed::decode(d.payload.as_slice())?)?;
                Ok(())
            }
        },
        shutdown.clone(),
    ));
    world
        .identification
        .erase_customer(EraseCustomerRequest {
            name: format!("customers/{flo}"),
            reason: "asked to be forgotten".into(),
            request_id: String::new(),
        })
        .await
        .expect("erase");
    let confirmed = loop {
        let c = tokio::time::timeout(Duration::from_secs(30), confirmations.recv())
            .await
            .expect("confirmed in time")
            .expect("confirmation");
        if c.service == "customization" {
            break c;
        }
    };
    shutdown.cancel();
    assert_eq!(confirmed.customer_id, flo);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM item_feedback WHERE customer_id = ANY($1)")
        .bind(vec![Uuid::parse_str(&flo).expect("uuid"), Uuid::parse_str(&di).expect("uuid")])
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(left, 0, "nothing learned about the erased customer is kept");
    world.env.cleanup().await;
}

#[tokio::test]
async fn malformed_requests_name_the_field_and_unknown_products_are_not_found() {
    let mut world = start().await;
    world.products(&["jeans"]).await;
    let bad = RecommendRequest {
        n: 101,
        max_per_cluster: -1,
        categories: vec![String::new()],
        context: Some(RecommendationContext {
            basket: vec![pb::BasketItem { product: None, quantity: -1 }],
            viewed_product: Some(ProductRef { r#ref: Some(product_ref::Ref::Product("jeans".into())) }),
            channel: 99,
            ..Default::default()
        }),
        customer: Some(CustomerRef { r#ref: Some(customer_ref::Ref::CustomerId("not-a-uuid".into())) }),
        ..Default::default()
    };
    let refused = world.customization.recommend(bad).await.expect_err("invalid");
    assert_invalid(
        &refused,
        &[
            "n",
            "max_per_cluster",
            "categories[0]",
            "context.viewed_product.product",
            "context.basket[0].quantity",
            "context.basket[0].product",
            "context.channel",
            "customer.customer_id",
        ],
    );
    let unknown = RecommendRequest {
        context: Some(RecommendationContext { viewed_product: product("no-such-thing"), ..Default::default() }),
        ..Default::default()
    };
    let refused = world.customization.recommend(unknown).await.expect_err("unknown viewed product");
    assert_eq!(refused.code(), Code::NotFound);
    let refused = world
        .customization
        .get_item_neighbours(GetItemNeighboursRequest { product: product("jeans"), n: 201, ..Default::default() })
        .await
        .expect_err("n too large");
    assert_invalid(&refused, &["n"]);
    let refused = world
        .customization
        .start_retraining(StartRetrainingRequest { neighbours_per_item: 5, ..Default::default() })
        .await
        .expect_err("too few neighbours");
    assert_invalid(&refused, &["neighbours_per_item"]);
    world.env.cleanup().await;
}
