//! `idic demo`: starts the four services in this process (monolithic mode) on a loopback
//! port and exercises them through real gRPC calls, printing each call and its answer.

use std::time::{Duration, Instant};

use idic::{IdicConfig, Target};
use idic_platform::{client::Bearer, config::ApiKey};
use idic_proto::{common::v1 as common, identification::v1 as ident};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Runs the demo against the configured Postgres and Redis.
pub async fn run(mut config: IdicConfig) -> anyhow::Result<()> {
    // The demo authenticates with a key of its own, made up for this run.
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    config.auth.api_keys.push(ApiKey { caller: "demo".into(), token: token.clone(), scopes: vec!["admin".into()] });
    // The demo works in a database of its own, `idic_demo` on the configured server,
    // made afresh on every run; the configured database is never touched.
    config.database.url = demo_database_url(&config.database.url);
    config.database.create_if_missing = true;
    idic_platform::db::drop_database(&config.database.url).await?;
    config.redis.key_prefix = "idic-demo:".into();
    let _ = idic_platform::redis::Redis::new(&config.redis)?.delete_prefix().await;

    println!("== IDIC demo: monolithic mode, Postgres {}, Redis {}", redact(&config.database.url), config.redis.url);
    let started = Instant::now();
    idic::migrate(&config, Target::All).await?;
    println!("   migrations applied to schemas identification, segmentation, interaction, customization");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let server = {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        tokio::spawn(async move { idic::serve(&config, Target::All, listener, shutdown).await })
    };
    let channel =
        Channel::from_shared(format!("http://{addr}"))?.connect_timeout(Duration::from_secs(5)).connect().await?;
    println!("   all four services listening on {addr} ({} ms)\n", started.elapsed().as_millis());

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    println!("-- health (grpc.health.v1), unauthenticated like any standard tool:");
    for service in idic_proto::SERVICE_NAMES {
        let answer =
            health.check(tonic_health::pb::HealthCheckRequest { service: service.to_owned() }).await?.into_inner();
        println!("   {service:<46} {:?}", answer.status());
    }

    let with_token = Bearer::new(&token)?;
    let mut identification = ident::identification_service_client::IdentificationServiceClient::with_interceptor(
        channel.clone(),
        with_token.clone(),
    );

    println!("\n-- CreateCustomer (a person seen at the web shop):");
    let request_id = uuid::Uuid::new_v4().to_string();
    let email = "  Ada.Lovelace@Analytical-Engine.CO.UK ".to_owned();
    let create = ident::CreateCustomerRequest {
        customer: Some(ident::Customer {
            kind: ident::CustomerKind::Person as i32,
            given_name: "Ada".into(),
            family_name: "Lovelace".into(),
            birth_date: Some(ident::Date { year: 1990, month: 12, day: 10 }),
            identifiers: vec![
                common::Identifier {
                    kind: common::IdentifierKind::Email as i32,
                    value: email,
                    namespace: String::new(),
                },
                common::Identifier {
                    kind: common::IdentifierKind::Phone as i32,
                    value: "+44 20 7946 0958".into(),
                    namespace: String::new(),
                },
            ],
            preferred_channel: common::Channel::Email as i32,
            ..Default::default()
        }),
        request_id: request_id.clone(),
        provenance: Some(ident::Provenance {
            source: "web-signup".into(),
            channel: common::Channel::Web as i32,
            observe_time: None,
        }),
    };
    let t = Instant::now();
    let created = identification.create_customer(create.clone()).await?.into_inner();
    println!("   created {} \"{}\" in {:.1} ms", created.name, created.display_name, ms(t));
    for id in &created.identifiers {
        println!(
            "     {:<28} {}",
            common::IdentifierKind::try_from(id.kind).map(|k| k.as_str_name()).unwrap_or("?"),
            id.value
        );
    }

    println!("\n-- the same request retried (same request_id): answered once, not created twice:");
    let retried = identification.create_customer(create).await?.into_inner();
    println!("   {} (same customer: {})", retried.name, retried.name == created.name);

    println!("\n-- GetCustomer (cache-aside: Redis first, Postgres when Redis misses or is down):");
    for attempt in 1..=2 {
        let t = Instant::now();
        let got =
            identification.get_customer(ident::GetCustomerRequest { name: created.name.clone() }).await?.into_inner();
        println!("   #{attempt} {} \"{}\" etag {} in {:.2} ms", got.name, got.display_name, got.etag, ms(t));
    }

    println!("\n-- a malformed email is refused with the offending field named:");
    let bad = identification
        .create_customer(ident::CreateCustomerRequest {
            customer: Some(ident::Customer {
                kind: ident::CustomerKind::Person as i32,
                given_name: "Bob".into(),
                identifiers: vec![common::Identifier {
                    kind: common::IdentifierKind::Email as i32,
                    value: "bob@@example".into(),
                    namespace: String::new(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    print_status(bad.map(|_| ()));

    println!("\n-- a call without a token:");
    let mut anonymous = ident::identification_service_client::IdentificationServiceClient::new(channel.clone());
    print_status(anonymous.get_customer(ident::GetCustomerRequest { name: created.name.clone() }).await.map(|_| ()));

    println!("\n-- an RPC whose feature has not landed yet:");
    let mut ident_again =
        ident::identification_service_client::IdentificationServiceClient::with_interceptor(channel, with_token);
    print_status(ident_again.resolve_customer(ident::ResolveCustomerRequest::default()).await.map(|_| ()));

    shutdown.cancel();
    server.await??;
    println!("\n== demo finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn print_status(result: Result<(), tonic::Status>) {
    match result {
        Ok(()) => println!("   OK"),
        Err(status) => {
            println!("   {:?}: {}", status.code(), status.message());
            let details = tonic_types::StatusExt::get_error_details(&status);
            if let Some(bad) = details.bad_request() {
                for v in &bad.field_violations {
                    println!("     field {} — {}", v.field, v.description);
                }
            }
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// The configured server's URL with the database `idic_demo`.
fn demo_database_url(url: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let server = match base.rfind('/') {
        Some(slash) if slash > base.find("://").map_or(0, |s| s + 2) => &base[..slash],
        _ => base,
    };
    if query.is_empty() { format!("{server}/idic_demo") } else { format!("{server}/idic_demo?{query}") }
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_uses_its_own_database_on_the_configured_server() {
        assert_eq!(demo_database_url("postgres://u:p@db:5432/idic"), "postgres://u:p@db:5432/idic_demo");
        assert_eq!(demo_database_url("postgres://db/prod?sslmode=require"), "postgres://db/idic_demo?sslmode=require");
        assert_eq!(demo_database_url("postgres://db"), "postgres://db/idic_demo");
    }

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(redact("postgres://user:secret@db/idic"), "postgres://user@db/idic");
    }
}
