//! `idic import customers`, `idic import interactions` and `idic export duplicates` run
//! as the binary against a real server: CSV files of customers and of contacts loaded
//! row by row with the summary printed, a re-run resuming (every row already imported a
//! duplicate), usage and credential mistakes refused with a non-zero exit, and duplicate
//! clusters written as CSV.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use idic_identification::domain::{BirthDate, DateOrder};
use idic_proto::{
    common::v1::{CustomerRef, GetJobRequest, Identifier, IdentifierKind, JobState, customer_ref},
    identification::v1::{
        ClusterDisposition, CreateCustomerRequest, Customer, CustomerKind, Date, ListDuplicateClustersRequest,
        StartCleansingRequest, identification_service_client::IdentificationServiceClient,
    },
    interaction::v1::{GetTimelineRequest, interaction_service_client::InteractionServiceClient},
};
use idic_synth::{Corruption, Record, dedup_file, population};
use idic_testkit::{Bearer, TestEnv, tokens};
use tonic::service::interceptor::InterceptedService;
#[path = "support/run.rs"]
#[allow(dead_code, reason = "the bench tables are read by the bench tests")]
mod run;

use run::{count, idic};

/// Ten customers: Ada twice (another email, same name, birth date and address), a
/// placeholder email, and a birth date that is no date.
const CUSTOMERS: &str = "\
Customer No,First name,Last name,Date of birth,E-mail,Telephone,Street,Postcode,Town,Newsletter
C-001,Ada,Lovelace,10/12/1990,ada.lovelace@analytical-engine.co.uk,07700 900123,12 St James's Square,SW1Y 4JH,London,yes
C-002,Charles,Babbage,26/12/1971,charles@difference-engine.co.uk,07700 900234,1 Dorset Street,W1U 4EG,London,no
C-003,Mary,Somerville,26/12/1980,mary@somerville-college.org.uk,07700 900345,8 Hanover Square,W1S 1HQ,London,
C-004,Ada,Lovelace,10/12/1990,countess@lovelace-family.org.uk,,12 St James's Square,SW1Y 4JH,London,
C-005,Junk,Email,01/01/1985,test@test.com,,,,,
C-006,Bad,Date,31/02/1984,b.date@calendar-reform.org.uk,,,,,
C-007,Michael,Faraday,22/09/1991,m.faraday@royal-institution.org.uk,07700 900456,21 Albemarle Street,W1S 4BS,London,yes
C-008,Caroline,Herschel,16/03/1950,caroline@herschel-observatory.org.uk,07700 900567,19 New King Street,BA1 2BL,Bath,
C-009,Isambard,Brunel,09/04/1966,ikb@great-western.co.uk,07700 900678,18 Duke Street,SW1A 2HG,London,no
C-010,Florence,Nightingale,12/05/1960,florence@lamp.org.uk,07700 900789,10 South Street,W1K 1DE,London,yes
";

const MAPS: [&str; 9] = [
    "First name=given_name",
    "Last name=family_name",
    "Date of birth=birth_date",
    "E-mail=email",
    "Telephone=phone",
    "Street=address_line",
    "Postcode=postcode",
    "Town=city",
    "Newsletter=fact:preference.newsletter",
];

/// A scratch directory of this test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("idic-client-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn import_args<'a>(file: &'a Path, server: &'a str, token: &'a str) -> Vec<&'a str> {
    let mut args = vec!["import", "customers", file.to_str().expect("utf-8 path"), "--server", server];
    args.extend(["--token", token, "--phone-region", "44", "--row-id", "Customer No", "--batch", "3"]);
    for map in MAPS {
        args.extend(["--map", map]);
    }
    args
}

#[tokio::test]
async fn a_csv_file_is_imported_with_bad_rows_reported_and_a_rerun_resumes() {
    let env = TestEnv::monolith().await;
    let scratch = Scratch::new();
    let file = scratch.file("crm-export.csv", CUSTOMERS);
    let server = format!("http://{}", env.addr(idic::Target::Identification));

    let first = idic(&import_args(&file, &server, tokens::ADMIN)).await;
    assert!(first.ok, "import failed: {}", first.stderr);
    let summary = &first.stdout;
    assert!(summary.contains("source file:crm-export"), "{summary}");
    assert_eq!(count(summary, "received"), 10, "{summary}");
    assert_eq!(count(summary, "created"), 7, "{summary}");
    assert_eq!(count(summary, "updated"), 1, "Ada's second record is linked:\n{summary}");
    assert!(summary.contains("(linked exact 0, probable 1)"), "{summary}");
    assert_eq!(count(summary, "duplicates"), 0, "{summary}");
    assert_eq!(count(summary, "rejected"), 2, "{summary}");
    assert!(summary.contains("(1 here, 1 by the server)"), "{summary}");
    let reasons: Vec<&str> = summary.lines().filter(|l| l.trim_start().starts_with("row ")).collect();
    assert_eq!(reasons.len(), 2, "{summary}");
    // Rows rejected here are listed first, then those the server rejected.
    assert!(reasons[0].contains("C-006") && reasons[0].contains("customer.birth_date"), "{summary}");
    assert!(reasons[1].contains("C-005") && reasons[1].contains("customer.identifiers[0].value"), "{summary}");

    // The same file again (an interrupted import resumed): nothing is applied twice.
    let again = idic(&import_args(&file, &server, tokens::ADMIN)).await;
    assert!(again.ok, "re-run failed: {}", again.stderr);
    let summary = &again.stdout;
    assert_eq!(count(summary, "received"), 10, "{summary}");
    assert_eq!((count(summary, "created"), count(summary, "updated")), (0, 0), "{summary}");
    assert_eq!(count(summary, "duplicates"), 8, "every row imported before:\n{summary}");
    assert_eq!(count(summary, "rejected"), 2, "{summary}");
    env.cleanup().await;
}

/// Creates a person holding `email`; answers her id.
async fn create_person(
    identification: &mut IdentificationServiceClient<InterceptedService<tonic::transport::Channel, Bearer>>,
    email: &str,
) -> String {
    let customer = Customer {
        kind: CustomerKind::Person as i32,
        given_name: "Ada".into(),
        identifiers: vec![Identifier {
            kind: IdentifierKind::Email as i32,
            value: email.into(),
            namespace: String::new(),
        }],
        ..Default::default()
    };
    let request = CreateCustomerRequest { customer: Some(customer), request_id: String::new(), provenance: None };
    let created = identification.create_customer(request).await.expect("create customer").into_inner();
    created.name.trim_start_matches("customers/").to_owned()
}

#[tokio::test]
async fn a_csv_file_of_contacts_is_ingested_with_bad_rows_reported_and_a_rerun_resumes() {
    let env = TestEnv::monolith().await;
    let channel = env.authorized(idic::Target::Identification, tokens::ADMIN).await;
    let mut identification = IdentificationServiceClient::new(channel);
    let ada = format!("ada.{}@analytical-engine.co.uk", uuid::Uuid::new_v4().simple());
    let grace = format!("grace.{}@analytical-engine.co.uk", uuid::Uuid::new_v4().simple());
    let ada_id = create_person(&mut identification, &ada).await;
    create_person(&mut identification, &grace).await;
    let days_ago = |days: i64| (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339();
    let (d5, d4, d3, d2, d1) = (days_ago(5), days_ago(4), days_ago(3), days_ago(2), days_ago(1));
    let contacts = format!(
        "Order,Customer e-mail,Type,Channel,When,Agent\n\
         O-1,{ada},inbound_call,call_centre,{d5},agent-3\n\
         O-2,{grace},inbound_call,call_centre,{d4},agent-7\n\
         O-3,{ada},teleportation,web,{d3},\n\
         O-4,nobody@nowhere.example,view,web,{d2},\n\
         O-5,{ada},view,web,{d1},\n"
    );
    let scratch = Scratch::new();
    let file = scratch.file("shop-contacts.csv", &contacts);
    let server = format!("http://{}", env.addr(idic::Target::Interaction));
    let args = [
        "import",
        "interactions",
        file.to_str().expect("utf-8 path"),
        "--server",
        &server,
        "--token",
        tokens::ADMIN,
        "--row-id",
        "Order",
        "--batch",
        "2",
        "--map",
        "Customer e-mail=email",
        "--map",
        "Type=kind",
        "--map",
        "Channel=channel",
        "--map",
        "When=occur_time",
        "--map",
        "Agent=handled_by",
    ];

    let first = idic(&args).await;
    assert!(first.ok, "import failed: {}", first.stderr);
    let summary = &first.stdout;
    assert!(summary.contains("source file:shop-contacts"), "{summary}");
    assert_eq!(count(summary, "received"), 5, "{summary}");
    assert_eq!(count(summary, "created"), 3, "{summary}");
    assert_eq!(count(summary, "rejected"), 2, "{summary}");
    assert!(summary.contains("(1 here, 1 by the server)"), "{summary}");
    let reasons: Vec<&str> = summary.lines().filter(|l| l.trim_start().starts_with("row ")).collect();
    assert_eq!(reasons.len(), 2, "{summary}");
    assert!(reasons[0].contains("O-3") && reasons[0].contains("interaction.kind"), "{summary}");
    assert!(reasons[1].contains("O-4") && reasons[1].contains("customer"), "{summary}");

    let again = idic(&args).await;
    assert!(again.ok, "re-run failed: {}", again.stderr);
    let summary = &again.stdout;
    assert_eq!(count(summary, "created"), 0, "{summary}");
    assert_eq!(count(summary, "duplicates"), 3, "every row stored before:\n{summary}");
    assert_eq!(count(summary, "rejected"), 2, "{summary}");

    let channel = env.authorized(idic::Target::Interaction, tokens::ADMIN).await;
    let mut interaction = InteractionServiceClient::new(channel);
    let request = GetTimelineRequest {
        customer: Some(CustomerRef { r#ref: Some(customer_ref::Ref::CustomerId(ada_id)) }),
        page_size: 100,
        ..Default::default()
    };
    let timeline = interaction.get_timeline(request).await.expect("timeline").into_inner();
    let sources: Vec<(&str, &str)> =
        timeline.interactions.iter().map(|i| (i.source.as_str(), i.source_reference.as_str())).collect();
    assert_eq!(sources, [("file:shop-contacts", "O-5"), ("file:shop-contacts", "O-1")], "stored once each");
    env.cleanup().await;
}

#[tokio::test]
async fn the_client_commands_have_help_naming_the_fields() {
    let import = idic(&["import", "customers", "--help"]).await;
    assert!(import.ok && import.stdout.contains("Usage:"), "{}", import.stderr);
    for field in ["given_name", "address_line", "fact:KEY", "row_id", "--phone-region", "--token-file"] {
        assert!(import.stdout.contains(field), "{field} missing from import customers --help");
    }
    let export = idic(&["export", "duplicates", "--help"]).await;
    assert!(export.ok && export.stdout.contains("cluster_id,customer,score,disposition,survivor"));
}

#[tokio::test]
async fn mistakes_of_usage_or_credentials_exit_non_zero_saying_what_is_wrong() {
    let env = TestEnv::monolith().await;
    let scratch = Scratch::new();
    let file = scratch.file("customers.csv", CUSTOMERS);
    let path = file.to_str().expect("utf-8 path");
    let server = format!("http://{}", env.addr(idic::Target::Identification));

    let unknown_field =
        idic(&["import", "customers", path, "--server", &server, "--token", tokens::ADMIN, "--map", "E-mail=mail"])
            .await;
    assert!(!unknown_field.ok);
    assert!(
        unknown_field.stderr.contains("given_name") && unknown_field.stderr.contains("fact:KEY"),
        "{}",
        unknown_field.stderr
    );

    let unknown_column =
        idic(&["import", "customers", path, "--server", &server, "--token", tokens::ADMIN, "--map", "Email=email"])
            .await;
    assert!(!unknown_column.ok);
    assert!(unknown_column.stderr.contains("E-mail"), "the columns are listed: {}", unknown_column.stderr);

    let no_token = idic(&["import", "customers", path, "--server", &server, "--map", "E-mail=email"]).await;
    assert!(!no_token.ok);
    assert!(no_token.stderr.contains("--token"), "{}", no_token.stderr);

    let wrong_token =
        idic(&["import", "customers", path, "--server", &server, "--token", "not-a-key", "--map", "E-mail=email"])
            .await;
    assert!(!wrong_token.ok);
    assert!(wrong_token.stderr.contains("Unauthenticated"), "{}", wrong_token.stderr);

    let token_file = scratch.file("token", &format!("{}\n", tokens::PROFILE_READER));
    let token_file = token_file.to_str().expect("utf-8 path");
    let read_only =
        idic(&["import", "customers", path, "--server", &server, "--token-file", token_file, "--map", "E-mail=email"])
            .await;
    assert!(!read_only.ok);
    assert!(read_only.stderr.contains("PermissionDenied"), "{}", read_only.stderr);

    let nobody_there = idic(&[
        "import",
        "customers",
        path,
        "--server",
        "http://127.0.0.1:9",
        "--token",
        tokens::ADMIN,
        "--map",
        "E-mail=email",
    ])
    .await;
    assert!(!nobody_there.ok);
    assert!(
        nobody_there.stderr.contains("cannot reach the IDIC server at http://127.0.0.1:9"),
        "{}",
        nobody_there.stderr
    );
    env.cleanup().await;
}

/// A generated record as a customer to create; `with_contacts` false leaves out the
/// email and phone (which another record may already hold).
fn customer(record: &Record, with_contacts: bool) -> Customer {
    let identifier = |kind: IdentifierKind, value: &str, namespace: &str| Identifier {
        kind: kind as i32,
        value: value.to_owned(),
        namespace: namespace.to_owned(),
    };
    let address = [&record.address_line, &record.postcode, &record.city]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut identifiers = Vec::new();
    if !address.trim().is_empty() {
        identifiers.push(identifier(IdentifierKind::PostalAddress, &address, ""));
    }
    if with_contacts {
        identifiers.extend(record.email.as_deref().map(|email| identifier(IdentifierKind::Email, email, "")));
        identifiers.extend(record.phone.as_deref().map(|phone| identifier(IdentifierKind::Phone, phone, "44")));
    }
    let birth_date = record
        .birth_date
        .as_deref()
        .and_then(|raw| BirthDate::parse_text(raw, DateOrder::DayFirst, chrono::Utc::now()).ok())
        .map(|b| Date { year: b.year.map_or(0, i32::from), month: i32::from(b.month), day: i32::from(b.day) });
    Customer {
        kind: CustomerKind::Person as i32,
        given_name: record.given_name.clone().unwrap_or_default(),
        family_name: record.family_name.clone().unwrap_or_else(|| "Unknown".into()),
        birth_date,
        identifiers,
        ..Default::default()
    }
}

#[tokio::test]
async fn duplicate_clusters_are_exported_one_line_per_member() {
    let env = TestEnv::monolith().await;
    let scratch = Scratch::new();
    let out = scratch.0.join("duplicates.csv");
    let out_path = out.to_str().expect("utf-8 path");
    let server = format!("http://{}", env.addr(idic::Target::Identification));
    let export = ["export", "duplicates", out_path, "--server", &server, "--token", tokens::ADMIN];

    let before_any_cleansing = idic(&export).await;
    assert!(!before_any_cleansing.ok, "nothing to export yet");
    assert!(before_any_cleansing.stderr.contains("NotFound"), "{}", before_any_cleansing.stderr);
    assert!(!out.exists(), "no partial file is left behind");

    // A file with known duplicates, each record created as its own customer.
    let mut client =
        IdentificationServiceClient::new(env.authorized(idic::Target::Identification, tokens::ADMIN).await);
    for record in dedup_file(6, &population(5, 150), 0.4, &Corruption::default()) {
        let create = |with_contacts| CreateCustomerRequest {
            customer: Some(customer(&record, with_contacts)),
            ..Default::default()
        };
        if client.create_customer(create(true)).await.is_err() {
            client.create_customer(create(false)).await.expect("create");
        }
    }
    let job = client.start_cleansing(StartCleansingRequest::default()).await.expect("start cleansing").into_inner();
    let mut state = JobState::Unspecified as i32;
    for _ in 0..600 {
        state = client.get_job(GetJobRequest { name: job.name.clone() }).await.expect("job").into_inner().state;
        if state == JobState::Succeeded as i32 || state == JobState::Failed as i32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, JobState::Succeeded as i32, "the cleansing job succeeds");

    let exported = idic(&[&export[..], &["--job", &job.name]].concat()).await;
    assert!(exported.ok, "export failed: {}", exported.stderr);
    let listed = client
        .list_duplicate_clusters(ListDuplicateClustersRequest {
            parent: job.name.clone(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("clusters")
        .into_inner()
        .clusters;
    assert!(!listed.is_empty(), "the file has duplicates");
    let disposition = |d: i32| match ClusterDisposition::try_from(d).expect("known disposition") {
        ClusterDisposition::AutoMerged => "auto_merged",
        ClusterDisposition::Review => "review",
        ClusterDisposition::PartiallyMerged => "partially_merged",
        ClusterDisposition::Unresolved => "unresolved",
        ClusterDisposition::Unspecified => "unspecified",
    };
    let expected: Vec<Vec<String>> = listed
        .iter()
        .flat_map(|c| {
            c.members.iter().map(|m| {
                let score = m.score.to_string();
                [&c.cluster_id, &m.customer, &score, disposition(c.disposition), &c.survivor]
                    .map(|s| s.to_owned())
                    .to_vec()
            })
        })
        .collect();
    let mut reader = csv::Reader::from_path(&out).expect("exported file");
    let header: Vec<String> = reader.headers().expect("header").iter().map(str::to_owned).collect();
    assert_eq!(header, ["cluster_id", "customer", "score", "disposition", "survivor"]);
    let rows: Vec<Vec<String>> =
        reader.records().map(|r| r.expect("row").iter().map(str::to_owned).collect()).collect();
    assert_eq!(rows.len(), expected.len(), "one line per member of every cluster");
    assert!(rows == expected, "the lines say what ListDuplicateClusters says");
    assert!(rows.iter().any(|r| !r[4].is_empty()), "merged clusters name their survivor");
    assert!(
        exported.stdout.contains(&format!("wrote {} members of {} duplicate clusters", rows.len(), listed.len())),
        "{}",
        exported.stdout
    );
    env.cleanup().await;
}
