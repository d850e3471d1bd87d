//! The catalog through the real gRPC server against real Postgres and Redis: updates by field
//! mask guarded by etags, retirement as a lifecycle change that cannot be undone to NEW, and
//! listings filtered by category, lifecycle and configurability, served in pages by sku, and
//! bulk upserts matched by sku that can be re-run without changing anything.

use idic::Target;
use idic_proto::{
    common::v1::Money,
    customization::v1::{
        self as pb, ConfigureProductRequest, CreateProductRequest, ListProductsRequest, SetProductModulesRequest,
        UpdateProductRequest, UpsertProductsRequest, customization_service_client::CustomizationServiceClient,
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

async fn create(client: &mut Client, sku: &str, category: &str) -> pb::Product {
    let product = pb::Product {
        sku: sku.into(),
        title: format!("Product {sku}"),
        categories: vec![category.into()],
        price: Some(Money { currency_code: "USD".into(), amount_minor: 1000 }),
        ..Default::default()
    };
    client
        .create_product(CreateProductRequest {
            product_id: String::new(),
            product: Some(product),
            request_id: String::new(),
        })
        .await
        .expect("create product")
        .into_inner()
}

async fn update(client: &mut Client, product: pb::Product, paths: &[&str]) -> Result<pb::Product, tonic::Status> {
    let update_mask = Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() });
    client
        .update_product(UpdateProductRequest { product: Some(product), update_mask })
        .await
        .map(tonic::Response::into_inner)
}

fn lifecycle(mut product: pb::Product, to: pb::Lifecycle) -> pb::Product {
    product.lifecycle = to as i32;
    product.etag.clear();
    product
}

#[tokio::test]
async fn updates_change_only_masked_fields_and_respect_the_etag() {
    let (env, mut client) = start().await;
    let created = create(&mut client, "SHIRT-1", "apparel/shirts").await;

    let mut changed = created.clone();
    changed.title = "Oxford shirt".into();
    changed.description = "not in the mask".into();
    let updated = update(&mut client, changed, &["title"]).await.expect("update title");
    assert_eq!(updated.title, "Oxford shirt");
    assert_eq!(updated.description, "");
    assert_ne!(updated.etag, created.etag);

    let mut stale = created.clone();
    stale.title = "Lost update".into();
    let refused = update(&mut client, stale, &["title"]).await.expect_err("stale etag");
    assert_eq!(refused.code(), Code::Aborted);

    let refused = update(&mut client, updated.clone(), &["title", "sku"]).await.expect_err("immutable path");
    assert_invalid(&refused, &["update_mask.paths[1]"]);

    let mut bad_price = updated.clone();
    bad_price.price = Some(Money { currency_code: "USD".into(), amount_minor: -1 });
    let refused = update(&mut client, bad_price, &["price"]).await.expect_err("negative price");
    assert_invalid(&refused, &["product.price.amount_minor"]);
    env.cleanup().await;
}

#[tokio::test]
async fn retired_products_never_become_new_again_nor_get_configured() {
    let (env, mut client) = start().await;
    let created = create(&mut client, "JEANS-OLD", "apparel/jeans").await;
    let modules = pb::ProductModules {
        name: format!("{}/modules", created.name),
        groups: vec![pb::ModuleGroup {
            id: "size".into(),
            title: "Size".into(),
            options: vec![pb::ModuleOption { id: "m".into(), title: "M".into(), ..Default::default() }],
            ..Default::default()
        }],
        ..Default::default()
    };
    client
        .set_product_modules(SetProductModulesRequest { modules: Some(modules), validate_only: false })
        .await
        .expect("set modules");

    let retired =
        update(&mut client, lifecycle(created.clone(), pb::Lifecycle::Retired), &["lifecycle"]).await.expect("retire");
    assert_eq!(retired.lifecycle(), pb::Lifecycle::Retired);
    let configure = ConfigureProductRequest {
        product: created.name.clone(),
        selections: vec![pb::OptionRef { group_id: "size".into(), option_id: "m".into() }],
        customer: None,
    };
    let refused = client.configure_product(configure.clone()).await.expect_err("retired");
    assert_eq!(refused.code(), Code::FailedPrecondition);

    let refused =
        update(&mut client, lifecycle(created.clone(), pb::Lifecycle::New), &["lifecycle"]).await.expect_err("new");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    update(&mut client, lifecycle(created, pb::Lifecycle::Active), &["lifecycle"]).await.expect("back on sale");
    let answer = client.configure_product(configure).await.expect("configure").into_inner();
    assert!(answer.valid, "{:?}", answer.violations);
    env.cleanup().await;
}

#[tokio::test]
async fn listings_filter_and_page_by_sku() {
    let (env, mut client) = start().await;
    for i in 0..5 {
        create(&mut client, &format!("JEANS-{i}"), "apparel/jeans/slim").await;
    }
    let shirt = create(&mut client, "SHIRT-1", "apparel/shirts").await;
    create(&mut client, "SAVINGS-1", "banking/savings").await;
    update(&mut client, lifecycle(shirt, pb::Lifecycle::Retired), &["lifecycle"]).await.expect("retire");

    let mut skus = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_products(ListProductsRequest {
                page_size: 2,
                page_token: token,
                category: "apparel".into(),
                lifecycles: vec![pb::Lifecycle::New as i32],
                kind: 0,
                configurable_only: false,
            })
            .await
            .expect("list")
            .into_inner();
        pages += 1;
        skus.extend(page.products.into_iter().map(|p| p.sku));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(skus, ["JEANS-0", "JEANS-1", "JEANS-2", "JEANS-3", "JEANS-4"]);
    assert_eq!(pages, 3);

    let all = client
        .list_products(ListProductsRequest { page_size: 100, ..Default::default() })
        .await
        .expect("list all")
        .into_inner();
    assert_eq!(all.products.len(), 7);
    let configurable = client
        .list_products(ListProductsRequest { configurable_only: true, ..Default::default() })
        .await
        .expect("list configurable")
        .into_inner();
    assert!(configurable.products.is_empty());

    let refused = client
        .list_products(ListProductsRequest { page_size: 2000, lifecycles: vec![9], ..Default::default() })
        .await
        .expect_err("bad request");
    assert_invalid(&refused, &["page_size", "lifecycles[0]"]);
    env.cleanup().await;
}

fn upsert_row(row_id: &str, sku: &str, title: &str, cents: i64) -> UpsertProductsRequest {
    UpsertProductsRequest {
        row_id: row_id.into(),
        product: Some(pb::Product {
            sku: sku.into(),
            title: title.into(),
            categories: vec!["apparel/jeans".into(), "sale".into()],
            price: Some(Money { currency_code: "USD".into(), amount_minor: cents }),
            attributes: [("colour".to_owned(), "indigo".to_owned()), ("fit".to_owned(), "slim".to_owned())].into(),
            ..Default::default()
        }),
        product_id: String::new(),
    }
}

#[tokio::test]
async fn bulk_upserts_match_by_sku_report_bad_rows_and_can_be_rerun() {
    let (env, mut client) = start().await;
    let existing = create(&mut client, "JEANS-A", "apparel").await;
    let rows = vec![
        upsert_row("line 2", "JEANS-A", "Slim jeans", 4500),
        upsert_row("line 3", "JEANS-B", "Straight jeans", 4000),
        upsert_row("line 4", "JEANS-C", "Bad price", -5),
        upsert_row("line 5", "JEANS-B", "Straight jeans, rinsed", 4200),
        upsert_row("line 6", "JEANS-D", "Bootcut jeans", 4100),
    ];
    let summary = client.upsert_products(tokio_stream::iter(rows.clone())).await.expect("upsert").into_inner();
    assert_eq!(
        (summary.received, summary.created, summary.updated, summary.duplicates, summary.rejected),
        (5, 2, 2, 0, 1)
    );
    let errors: Vec<(&str, &str)> = summary.errors.iter().map(|e| (e.row_id.as_str(), e.field.as_str())).collect();
    assert_eq!(errors, [("line 4", "product.price.amount_minor")]);

    let listed = client
        .list_products(ListProductsRequest { category: "sale".into(), ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .products;
    let seen: Vec<(&str, &str, i64)> = listed
        .iter()
        .map(|p| (p.sku.as_str(), p.title.as_str(), p.price.as_ref().map_or(0, |m| m.amount_minor)))
        .collect();
    assert_eq!(
        seen,
        [
            ("JEANS-A", "Slim jeans", 4500),
            ("JEANS-B", "Straight jeans, rinsed", 4200),
            ("JEANS-D", "Bootcut jeans", 4100)
        ]
    );
    assert_eq!(listed[0].name, existing.name, "a known sku keeps its product");
    assert_eq!(listed[0].attributes.get("fit").map(String::as_str), Some("slim"));

    let again = client.upsert_products(tokio_stream::iter(rows)).await.expect("re-run").into_inner();
    // JEANS-B's two rows still alternate its title; JEANS-A and JEANS-D are left as they are.
    assert_eq!((again.created, again.updated, again.duplicates, again.rejected), (0, 2, 2, 1));
    env.cleanup().await;
}
