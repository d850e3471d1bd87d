//! `idic import products` runs as the binary against a real server: a CSV file of products
//! upserted into the catalog by sku with bad rows reported, and a re-run changing nothing.

use idic_proto::customization::v1::{ListProductsRequest, customization_service_client::CustomizationServiceClient};
use idic_testkit::{TestEnv, tokens};
#[path = "support/run.rs"]
#[allow(dead_code, reason = "the bench tables are read by the bench tests")]
mod run;

use run::{count, idic};

/// Five products: one price that is no whole number of cents, one kind nobody sells, and a
/// sku seen twice (the later row wins).
const PRODUCTS: &str = "\
Code,Name,Type,Categories,Currency,Cents,Colour
J-01,Slim jeans,good,apparel/jeans|sale,USD,4995,indigo
J-02,Straight jeans,good,apparel/jeans,USD,49.95,black
S-01,Alterations,teleport,services,USD,1500,
J-01,Slim jeans (rinsed),good,apparel/jeans|sale,USD,5495,indigo
A-01,Savings account,service,banking/savings,USD,0,
";

#[tokio::test]
async fn a_csv_file_of_products_is_upserted_by_sku_and_a_rerun_changes_nothing() {
    let env = TestEnv::monolith().await;
    let dir = std::env::temp_dir().join(format!("idic-products-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("catalog.csv");
    std::fs::write(&file, PRODUCTS).expect("write file");
    let server = format!("http://{}", env.addr(idic::Target::Customization));
    let args = [
        "import",
        "products",
        file.to_str().expect("utf-8 path"),
        "--server",
        &server,
        "--token",
        tokens::ADMIN,
        "--map",
        "Code=sku",
        "--map",
        "Name=title",
        "--map",
        "Type=kind",
        "--map",
        "Categories=category",
        "--map",
        "Currency=currency",
        "--map",
        "Cents=price_minor",
        "--map",
        "Colour=attr:colour",
    ];

    let first = idic(&args).await;
    assert!(first.ok, "import failed: {}", first.stderr);
    let summary = &first.stdout;
    assert_eq!(count(summary, "received"), 5, "{summary}");
    assert_eq!(count(summary, "created"), 2, "{summary}");
    assert_eq!(count(summary, "updated"), 1, "{summary}");
    assert_eq!(count(summary, "rejected"), 2, "{summary}");
    let reasons: Vec<&str> = summary.lines().filter(|l| l.trim_start().starts_with("row ")).collect();
    assert_eq!(reasons.len(), 2, "{summary}");
    assert!(reasons[0].contains("row 3") && reasons[0].contains("product.price.amount_minor"), "{summary}");
    assert!(reasons[1].contains("row 4") && reasons[1].contains("product.kind"), "{summary}");

    let again = idic(&args).await;
    assert!(again.ok, "re-run failed: {}", again.stderr);
    let summary = &again.stdout;
    assert_eq!(count(summary, "created"), 0, "{summary}");
    // J-01's two rows still differ from each other; A-01 is left as it is.
    assert_eq!(count(summary, "updated"), 2, "{summary}");
    assert_eq!(count(summary, "duplicates"), 1, "{summary}");

    let channel = env.authorized(idic::Target::Customization, tokens::ADMIN).await;
    let mut customization = CustomizationServiceClient::new(channel);
    let listed =
        customization.list_products(ListProductsRequest::default()).await.expect("list products").into_inner().products;
    let seen: Vec<(&str, &str, i64)> = listed
        .iter()
        .map(|p| (p.sku.as_str(), p.title.as_str(), p.price.as_ref().map_or(-1, |m| m.amount_minor)))
        .collect();
    assert_eq!(seen, [("A-01", "Savings account", 0), ("J-01", "Slim jeans (rinsed)", 5495)]);
    assert_eq!(listed[1].categories, ["apparel/jeans", "sale"]);
    assert_eq!(listed[1].attributes.get("colour").map(String::as_str), Some("indigo"));
    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup().await;
}
