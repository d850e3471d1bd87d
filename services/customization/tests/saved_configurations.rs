//! Saved configurations ("remember the specs") through the real servers against real Postgres
//! and Redis: a customer's jeans specification saved once, offered as the default for the same
//! product and carried over to another cut sharing its groups; saving the same variant again
//! updates it; using it moves it to the front; a merge gives the absorbed customer's
//! configurations to the survivor; refusals name the field.

use idic::Target;
use idic_proto::{
    common::v1::{CustomerRef, Identifier, IdentifierKind, Money, customer_ref},
    customization::v1::{
        self as pb, ConfigureProductRequest, CreateProductRequest, DeleteSavedConfigurationRequest,
        GetDefaultConfigurationRequest, ListSavedConfigurationsRequest, SaveConfigurationRequest,
        SetProductModulesRequest, customization_service_client::CustomizationServiceClient,
    },
    identification::v1::{
        CreateCustomerRequest, Customer, CustomerKind, MergeCustomersRequest,
        identification_service_client::IdentificationServiceClient,
    },
};
use idic_testkit::{Bearer, TestEnv, assert_invalid, eventually, tokens, violated_fields};
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;

type Client = CustomizationServiceClient<InterceptedService<Channel, Bearer>>;
type Identification = IdentificationServiceClient<InterceptedService<Channel, Bearer>>;

fn usd(amount_minor: i64) -> Option<Money> {
    Some(Money { currency_code: "USD".into(), amount_minor })
}

fn pick(group: &str, option: &str) -> pb::OptionRef {
    pb::OptionRef { group_id: group.into(), option_id: option.into() }
}

fn by_id(id: &str) -> Option<CustomerRef> {
    Some(CustomerRef { r#ref: Some(customer_ref::Ref::CustomerId(id.to_owned())) })
}

/// A pair of jeans with 227 sizes and 25 leg lengths (defaults s100 and l32; l36 and longer
/// cost five dollars more); the largest size is not cut in the shortest leg length.
async fn jeans(client: &mut Client, id: &str) {
    let product = pb::Product {
        sku: format!("JEANS-{id}"),
        title: format!("Jeans {id}"),
        categories: vec!["apparel/jeans".into()],
        price: usd(10_000),
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
        .expect("create product");
    let option = |id: String, delta: i64, is_default: bool| pb::ModuleOption {
        title: id.to_uppercase(),
        id,
        price_delta: (delta != 0).then(|| usd(delta)).flatten(),
        is_default,
        ..Default::default()
    };
    let sizes = (0..227).map(|i| option(format!("s{i:03}"), 0, i == 100)).collect();
    let lengths = (26..51).map(|l| option(format!("l{l}"), if l >= 36 { 500 } else { 0 }, l == 32)).collect();
    let groups = vec![
        pb::ModuleGroup { id: "waist-hip".into(), title: "Waist and hip".into(), options: sizes, ..Default::default() },
        pb::ModuleGroup { id: "leg-length".into(), title: "Leg length".into(), options: lengths, ..Default::default() },
    ];
    let constraints = vec![pb::ModuleConstraint {
        id: "largest-not-short".into(),
        kind: pb::ConstraintKind::Excludes as i32,
        subject: Some(pick("waist-hip", "s226")),
        targets: vec![pick("leg-length", "l26")],
        description: "The largest size is cut from leg length 27".into(),
    }];
    let modules =
        pb::ProductModules { name: format!("products/{id}/modules"), groups, constraints, ..Default::default() };
    client
        .set_product_modules(SetProductModulesRequest { modules: Some(modules), validate_only: false })
        .await
        .expect("set modules");
}

async fn customer(identification: &mut Identification, name: &str) -> String {
    let email = format!("{name}.{}@analytical-engine.co.uk", Uuid::new_v4().simple());
    let customer = Customer {
        kind: CustomerKind::Person as i32,
        given_name: name.to_owned(),
        identifiers: vec![Identifier { kind: IdentifierKind::Email as i32, value: email, namespace: String::new() }],
        ..Default::default()
    };
    let request = CreateCustomerRequest { customer: Some(customer), request_id: String::new(), provenance: None };
    identification.create_customer(request).await.expect("create customer").into_inner().name.replace("customers/", "")
}

fn save(
    customer: &str,
    product: &str,
    selections: Vec<pb::OptionRef>,
    label: &str,
    is_default: bool,
) -> SaveConfigurationRequest {
    SaveConfigurationRequest {
        customer: by_id(customer),
        configuration: Some(pb::SavedConfiguration {
            product: format!("products/{product}"),
            selections,
            display_name: label.into(),
            is_default,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

async fn default_for(client: &mut Client, customer: &str, product: &str) -> pb::DefaultConfiguration {
    client
        .get_default_configuration(GetDefaultConfigurationRequest {
            customer: by_id(customer),
            product: format!("products/{product}"),
        })
        .await
        .expect("default configuration")
        .into_inner()
}

async fn list(client: &mut Client, customer: &str) -> Vec<pb::SavedConfiguration> {
    client
        .list_saved_configurations(ListSavedConfigurationsRequest { customer: by_id(customer), ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .configurations
}

#[tokio::test]
async fn a_saved_specification_is_the_default_next_time_and_carries_over_to_another_cut() {
    let env = TestEnv::monolith().await;
    let mut client = CustomizationServiceClient::new(env.authorized(Target::Customization, tokens::ADMIN).await);
    let mut identification =
        IdentificationServiceClient::new(env.authorized(Target::Identification, tokens::ADMIN).await);
    jeans(&mut client, "jeans-501").await;
    jeans(&mut client, "jeans-slim").await;
    let ada = customer(&mut identification, "ada").await;

    let first = default_for(&mut client, &ada, "jeans-slim").await;
    assert_eq!(first.source, pb::DefaultSource::ProductDefaults as i32);
    assert_eq!(first.selections, vec![pick("waist-hip", "s100"), pick("leg-length", "l32")]);
    assert!(first.valid);

    let spec = vec![pick("waist-hip", "s120"), pick("leg-length", "l36")];
    let saved = client.save_configuration(save(&ada, "jeans-501", spec.clone(), "office", true)).await.expect("save");
    let saved = saved.into_inner();
    assert!(saved.name.starts_with(&format!("customers/{ada}/configurations/")));
    assert!(saved.valid && saved.is_default);
    assert_eq!(saved.saved_price, usd(10_500));
    assert_eq!(saved.variant_key, "leg-length=l36;waist-hip=s120");
    let again = client.save_configuration(save(&ada, "jeans-501", spec.clone(), "", true)).await.expect("save again");
    let again = again.into_inner();
    assert_eq!(again.name, saved.name, "the same variant is updated, not saved twice");
    assert_eq!(again.display_name, "office", "an empty label keeps the one saved");

    let same = default_for(&mut client, &ada, "jeans-501").await;
    assert_eq!(same.source, pb::DefaultSource::SavedForProduct as i32);
    assert_eq!(same.saved_configuration, saved.name);
    assert_eq!(same.selections, spec);
    let other = default_for(&mut client, &ada, "jeans-slim").await;
    assert_eq!(other.source, pb::DefaultSource::CarriedOver as i32);
    assert_eq!(other.selections, spec, "her size and length carry over to the other cut");
    assert_eq!(other.carried_from, vec!["products/jeans-501".to_owned()]);
    assert_eq!((other.valid, other.price.clone()), (true, usd(10_500)));

    // A second configuration goes first; using the first one brings it back to the front.
    let casual = vec![pick("waist-hip", "s121"), pick("leg-length", "l30")];
    client.save_configuration(save(&ada, "jeans-slim", casual.clone(), "casual", false)).await.expect("save casual");
    assert_eq!(list(&mut client, &ada).await[0].product, "products/jeans-slim");
    client
        .configure_product(ConfigureProductRequest {
            product: "products/jeans-501".into(),
            selections: spec.clone(),
            customer: by_id(&ada),
        })
        .await
        .expect("configure");
    let listed = list(&mut client, &ada).await;
    assert_eq!(listed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>()[0], saved.name);
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|c| c.valid));

    let refused = client
        .save_configuration(save(
            &ada,
            "jeans-501",
            vec![pick("waist-hip", "s226"), pick("leg-length", "l26")],
            "",
            false,
        ))
        .await
        .expect_err("excluded combination");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        violated_fields(&refused).iter().all(|f| f.starts_with("configuration.selections[")),
        "{:?}",
        violated_fields(&refused)
    );
    let refused = client
        .save_configuration(SaveConfigurationRequest { customer: None, ..save(&ada, "Not An Id", vec![], "", false) })
        .await;
    assert_invalid(
        &refused.expect_err("malformed"),
        &["customer", "configuration.product", "configuration.selections"],
    );

    let slim = listed.iter().find(|c| c.product == "products/jeans-slim").expect("slim").name.clone();
    client.delete_saved_configuration(DeleteSavedConfigurationRequest { name: slim.clone() }).await.expect("delete");
    let gone = client.delete_saved_configuration(DeleteSavedConfigurationRequest { name: slim }).await;
    assert_eq!(gone.expect_err("deleted").code(), Code::NotFound);
    env.cleanup().await;
}

#[tokio::test]
async fn a_merge_gives_the_absorbed_customers_configurations_to_the_survivor() {
    let env = TestEnv::monolith().await;
    let mut client = CustomizationServiceClient::new(env.authorized(Target::Customization, tokens::ADMIN).await);
    let mut identification =
        IdentificationServiceClient::new(env.authorized(Target::Identification, tokens::ADMIN).await);
    jeans(&mut client, "jeans-501").await;
    let (ada, augusta) = (customer(&mut identification, "ada").await, customer(&mut identification, "augusta").await);
    let shared = vec![pick("waist-hip", "s120"), pick("leg-length", "l34")];
    let own = vec![pick("waist-hip", "s090"), pick("leg-length", "l30")];
    client.save_configuration(save(&ada, "jeans-501", shared.clone(), "ada's", true)).await.expect("save");
    client.save_configuration(save(&augusta, "jeans-501", shared, "augusta's", true)).await.expect("save");
    client.save_configuration(save(&augusta, "jeans-501", own, "", false)).await.expect("save");
    identification
        .merge_customers(MergeCustomersRequest {
            survivor: format!("customers/{ada}"),
            merged_customers: vec![format!("customers/{augusta}")],
            reason: "the same person".into(),
            override_cannot_link: false,
            request_id: String::new(),
        })
        .await
        .expect("merge");
    let listed = eventually("the merge to reach customization", || {
        let (mut client, ada) = (client.clone(), ada.clone());
        async move {
            let l = list(&mut client, &ada).await;
            (l.len() == 2).then_some(l)
        }
    })
    .await;
    let labels: Vec<&str> = listed.iter().map(|c| c.display_name.as_str()).collect();
    assert!(labels.contains(&"ada's"), "the survivor's copy of a shared variant stays: {labels:?}");
    assert_eq!(listed.iter().filter(|c| c.is_default).count(), 1, "one default per product");
    env.cleanup().await;
}
