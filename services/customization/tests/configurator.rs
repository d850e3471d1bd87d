//! Mass customization through the real gRPC server against real Postgres and Redis: jeans
//! assembled from 227 waist/hip sizes and 25 leg lengths, counted before and after a
//! constraint, priced or refused with their violations, and module sets refused naming the
//! exact field.

use idic::Target;
use idic_proto::{
    common::v1::Money,
    customization::v1::{
        self as pb, ConfigureProductRequest, CountVariantsRequest, CreateProductRequest, GetProductModulesRequest,
        GetProductRequest, SetProductModulesRequest, customization_service_client::CustomizationServiceClient,
    },
};
use idic_testkit::{Bearer, TestEnv, assert_invalid, tokens};
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

type Client = CustomizationServiceClient<InterceptedService<Channel, Bearer>>;

async fn start() -> (TestEnv, Client) {
    let env = TestEnv::start(&[Target::Customization]).await;
    let client = CustomizationServiceClient::new(env.authorized(Target::Customization, tokens::ADMIN).await);
    (env, client)
}

fn usd(amount_minor: i64) -> Option<Money> {
    Some(Money { currency_code: "USD".into(), amount_minor })
}

/// Creates a made-to-order product priced `cents` US cents.
async fn create_jeans(client: &mut Client, id: &str, cents: i64) -> pb::Product {
    let product = pb::Product {
        sku: format!("JEANS-{id}"),
        title: "Custom-fit jeans".into(),
        categories: vec!["apparel/jeans".into()],
        price: usd(cents),
        availability: pb::Availability::MadeToOrder as i32,
        ..Default::default()
    };
    client
        .create_product(CreateProductRequest {
            product_id: id.into(),
            product: Some(product),
            request_id: String::new(),
        })
        .await
        .expect("create product")
        .into_inner()
}

fn option(id: String, delta_cents: i64, is_default: bool) -> pb::ModuleOption {
    pb::ModuleOption {
        title: id.to_uppercase(),
        id,
        price_delta: (delta_cents != 0).then(|| usd(delta_cents)).flatten(),
        is_default,
        ..Default::default()
    }
}

/// 227 waist/hip sizes (`s000`–`s226`) and 25 leg lengths (`l26`–`l50`); `l36` and longer cost
/// five dollars more.
fn jeans_groups() -> Vec<pb::ModuleGroup> {
    let sizes = (0..227).map(|i| option(format!("s{i:03}"), 0, i == 100)).collect();
    let lengths = (26..51).map(|l| option(format!("l{l}"), if l >= 36 { 500 } else { 0 }, l == 32)).collect();
    vec![
        pb::ModuleGroup { id: "waist-hip".into(), title: "Waist and hip".into(), options: sizes, ..Default::default() },
        pb::ModuleGroup { id: "leg-length".into(), title: "Leg length".into(), options: lengths, ..Default::default() },
    ]
}

fn pick(group: &str, option: &str) -> pb::OptionRef {
    pb::OptionRef { group_id: group.into(), option_id: option.into() }
}

/// The largest size is not cut in the four shortest leg lengths.
fn largest_not_short() -> pb::ModuleConstraint {
    pb::ModuleConstraint {
        id: "largest-not-short".into(),
        kind: pb::ConstraintKind::Excludes as i32,
        subject: Some(pick("waist-hip", "s226")),
        targets: (26..30).map(|l| pick("leg-length", &format!("l{l}"))).collect(),
        description: "The largest size is cut from leg length 30".into(),
    }
}

async fn set_modules(
    client: &mut Client,
    product: &str,
    groups: Vec<pb::ModuleGroup>,
    constraints: Vec<pb::ModuleConstraint>,
    etag: &str,
) -> Result<pb::ProductModules, tonic::Status> {
    let modules = pb::ProductModules {
        name: format!("products/{product}/modules"),
        groups,
        constraints,
        etag: etag.into(),
        ..Default::default()
    };
    client
        .set_product_modules(SetProductModulesRequest { modules: Some(modules), validate_only: false })
        .await
        .map(tonic::Response::into_inner)
}

async fn count(client: &mut Client, product: &str, fixed: Vec<pb::OptionRef>) -> pb::CountVariantsResponse {
    client
        .count_variants(CountVariantsRequest {
            product: format!("products/{product}"),
            fixed_selections: fixed,
            include_extra_groups: false,
            include_discontinued: false,
        })
        .await
        .expect("count variants")
        .into_inner()
}

async fn configure(client: &mut Client, product: &str, selections: Vec<pb::OptionRef>) -> pb::ConfigureProductResponse {
    client
        .configure_product(ConfigureProductRequest {
            product: format!("products/{product}"),
            selections,
            customer: None,
        })
        .await
        .expect("configure")
        .into_inner()
}

#[tokio::test]
async fn jeans_count_5675_variants_before_constraints_and_fewer_after() {
    let (env, mut client) = start().await;
    create_jeans(&mut client, "jeans", 5000).await;

    let first = set_modules(&mut client, "jeans", jeans_groups(), Vec::new(), "").await.expect("set modules");
    assert_eq!(first.revision, 1);
    let counted = count(&mut client, "jeans", Vec::new()).await;
    assert_eq!((counted.variants_before_constraints, counted.variants_after_constraints), (5675, 5675));
    assert!(!counted.saturated);

    let second = set_modules(&mut client, "jeans", jeans_groups(), vec![largest_not_short()], &first.etag)
        .await
        .expect("add a constraint");
    assert_eq!(second.revision, 2);
    let counted = count(&mut client, "jeans", Vec::new()).await;
    assert_eq!(counted.variants_before_constraints, 5675);
    assert_eq!(counted.variants_after_constraints, 5675 - 4, "s226 loses its four shortest lengths");
    assert_eq!(counted.modules_revision, 2);

    let largest = count(&mut client, "jeans", vec![pick("waist-hip", "s226")]).await;
    assert_eq!((largest.variants_before_constraints, largest.variants_after_constraints), (25, 21));

    let unknown = client
        .count_variants(CountVariantsRequest {
            product: "products/jeans".into(),
            fixed_selections: vec![pick("waist-hip", "s000"), pick("waist-hip", "s999")],
            include_extra_groups: false,
            include_discontinued: false,
        })
        .await
        .expect_err("unknown fixed option");
    assert_invalid(&unknown, &["fixed_selections[1]"]);

    let product =
        client.get_product(GetProductRequest { name: "products/jeans".into() }).await.expect("get").into_inner();
    assert!(product.configurable);
    env.cleanup().await;
}

#[tokio::test]
async fn configure_prices_a_valid_selection_and_explains_an_invalid_one() {
    let (env, mut client) = start().await;
    create_jeans(&mut client, "jeans", 5000).await;
    set_modules(&mut client, "jeans", jeans_groups(), vec![largest_not_short()], "").await.expect("set modules");

    let valid = configure(&mut client, "jeans", vec![pick("waist-hip", "s034"), pick("leg-length", "l38")]).await;
    assert!(valid.valid, "{:?}", valid.violations);
    assert_eq!(valid.price, usd(5500));
    let lines: Vec<(Option<pb::OptionRef>, Option<Money>)> =
        valid.price_lines.iter().map(|l| (l.option.clone(), l.amount.clone())).collect();
    assert_eq!(lines, vec![(None, usd(5000)), (Some(pick("leg-length", "l38")), usd(500))]);
    assert_eq!(valid.variant_key, "leg-length=l38;waist-hip=s034");
    assert_eq!(valid.modules_revision, 1);

    let excluded = configure(&mut client, "jeans", vec![pick("waist-hip", "s226"), pick("leg-length", "l27")]).await;
    assert!(!excluded.valid);
    assert_eq!(excluded.price, None);
    let broken: Vec<(pb::ViolationKind, &str)> =
        excluded.violations.iter().map(|v| (v.kind(), v.constraint_id.as_str())).collect();
    assert_eq!(broken, vec![(pb::ViolationKind::ConstraintExcludes, "largest-not-short")]);

    let incomplete = configure(&mut client, "jeans", vec![pick("waist-hip", "s010"), pick("colour", "red")]).await;
    let kinds: Vec<pb::ViolationKind> = incomplete.violations.iter().map(|v| v.kind()).collect();
    assert!(kinds.contains(&pb::ViolationKind::MissingSelection), "{kinds:?}");
    assert!(kinds.contains(&pb::ViolationKind::UnknownGroup), "{kinds:?}");

    let malformed = client
        .configure_product(ConfigureProductRequest {
            product: "products/jeans".into(),
            selections: vec![pick("waist-hip", "s010"), pick("Leg Length", "l30")],
            customer: None,
        })
        .await
        .expect_err("malformed group id");
    assert_invalid(&malformed, &["selections[1].group_id"]);

    let missing = client
        .configure_product(ConfigureProductRequest {
            product: "products/no-such".into(),
            selections: Vec::new(),
            customer: None,
        })
        .await
        .expect_err("unknown product");
    assert_eq!(missing.code(), Code::NotFound);
    env.cleanup().await;
}

#[tokio::test]
async fn module_sets_are_refused_naming_the_exact_field() {
    let (env, mut client) = start().await;
    create_jeans(&mut client, "jeans", 5000).await;

    let mut groups = jeans_groups();
    groups[1].options[0].price_delta = Some(Money { currency_code: "EUR".into(), amount_minor: 100 });
    let refused = set_modules(&mut client, "jeans", groups, Vec::new(), "").await.expect_err("wrong currency");
    assert_invalid(&refused, &["modules.groups[1].options[0].price_delta"]);

    let mut groups = jeans_groups();
    groups[0].options[3].id = "s001".into();
    let refused = set_modules(&mut client, "jeans", groups, Vec::new(), "").await.expect_err("duplicate option");
    assert_invalid(&refused, &["modules.groups[0].options[3].id"]);

    let mut unknown_target = largest_not_short();
    unknown_target.targets.push(pick("leg-length", "l99"));
    let refused =
        set_modules(&mut client, "jeans", jeans_groups(), vec![unknown_target], "").await.expect_err("unknown target");
    assert_invalid(&refused, &["modules.constraints[0].targets[4]"]);

    let mut no_kind = largest_not_short();
    no_kind.kind = pb::ConstraintKind::Unspecified as i32;
    let refused = set_modules(&mut client, "jeans", jeans_groups(), vec![no_kind], "").await.expect_err("no kind");
    assert_invalid(&refused, &["modules.constraints[0].kind"]);

    let nothing = client
        .get_product_modules(GetProductModulesRequest { name: "products/jeans/modules".into() })
        .await
        .expect("get modules")
        .into_inner();
    assert_eq!((nothing.revision, nothing.groups.len()), (0, 0), "refused sets store nothing");

    let set = set_modules(&mut client, "jeans", jeans_groups(), Vec::new(), "").await.expect("set");
    let stale = set_modules(&mut client, "jeans", jeans_groups(), Vec::new(), "0").await.expect_err("stale etag");
    assert_eq!(stale.code(), Code::Aborted);
    let read = client
        .get_product_modules(GetProductModulesRequest { name: "products/jeans/modules".into() })
        .await
        .expect("get modules")
        .into_inner();
    assert_eq!(read.revision, set.revision);
    assert_eq!(read.groups, jeans_groups());
    env.cleanup().await;
}

#[tokio::test]
async fn products_are_created_once_and_read_back() {
    let (env, mut client) = start().await;
    let created = create_jeans(&mut client, "jeans", 5000).await;
    assert_eq!(created.name, "products/jeans");
    assert_eq!(created.lifecycle(), pb::Lifecycle::New);
    assert!(!created.configurable);
    let read = client.get_product(GetProductRequest { name: "products/jeans".into() }).await.expect("get").into_inner();
    assert_eq!(read, created);

    let again = client
        .create_product(CreateProductRequest {
            product_id: "jeans".into(),
            product: Some(created.clone()),
            request_id: String::new(),
        })
        .await
        .expect_err("taken id");
    assert_eq!(again.code(), Code::AlreadyExists);

    let bad = client
        .create_product(CreateProductRequest {
            product_id: "Bad Id".into(),
            product: Some(pb::Product {
                sku: "S-1".into(),
                title: String::new(),
                price: Some(Money { currency_code: "usd".into(), amount_minor: 1 }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("malformed");
    assert_invalid(&bad, &["product_id", "product.title", "product.price.currency_code"]);

    let absent = client.get_product(GetProductRequest { name: "products/none".into() }).await.expect_err("absent");
    assert_eq!(absent.code(), Code::NotFound);
    env.cleanup().await;
}
