//! Feedback through real gRPC, Postgres and Redis: recorded on the customer's timeline
//! (or anonymously), read back and listed, and summarised by topic and day with its
//! sentiment and ratings.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{Client, admin, assert_invalid, by_id, create_person, identification, timeline, unique_email};
use idic_platform::jobs::timestamp;
use idic_proto::{
    common::v1::{Channel, Period},
    interaction::v1::{
        Feedback, FeedbackGroupBy, FeedbackType, GetFeedbackRequest, GetFeedbackSummaryRequest, InteractionKind,
        ListFeedbackRequest, RecordFeedbackRequest, Sentiment,
    },
};
use idic_testkit::TestEnv;
use uuid::Uuid;

fn feedback(topic: &str, sentiment: Sentiment, rating: Option<i32>, at: Option<DateTime<Utc>>) -> Feedback {
    Feedback {
        channel: Channel::Web as i32,
        topic: topic.into(),
        sentiment: sentiment as i32,
        rating,
        text: "The checkout asked for my address twice.".into(),
        create_time: at.map(timestamp),
        ..Default::default()
    }
}

fn request(customer: Option<&str>, feedback: Feedback) -> RecordFeedbackRequest {
    RecordFeedbackRequest {
        request_id: Uuid::new_v4().to_string(),
        customer: customer.and_then(by_id),
        feedback: Some(feedback),
    }
}

async fn give(client: &mut Client, customer: Option<&str>, feedback: Feedback) -> Feedback {
    client.record_feedback(request(customer, feedback)).await.expect("record feedback").into_inner()
}

#[tokio::test]
async fn a_customers_feedback_lands_on_the_timeline_and_anonymous_feedback_does_not() {
    let env = TestEnv::monolith().await;
    let (mut client, mut identification) = (admin(&env).await, identification(&env).await);
    let customer = create_person(&mut identification, "Ada", &unique_email("ada")).await;

    let first = request(Some(&customer), feedback("checkout", Sentiment::Negative, Some(2), None));
    let given = client.record_feedback(first.clone()).await.expect("record").into_inner();
    assert!(given.name.starts_with("feedback/"));
    assert_eq!((given.customer_id.as_str(), given.feedback_type), (customer.as_str(), FeedbackType::Comment as i32));
    let retried = client.record_feedback(first).await.expect("retry").into_inner();
    assert_eq!(retried.name, given.name, "a retry answers the first feedback");
    let survey = Feedback {
        feedback_type: FeedbackType::SurveyAnswer as i32,
        ..feedback("delivery", Sentiment::Positive, Some(5), None)
    };
    give(&mut client, Some(&customer), survey).await;
    let anonymous = give(&mut client, None, feedback("checkout", Sentiment::Neutral, None, None)).await;
    assert!(anonymous.interaction.is_empty() && anonymous.customer_id.is_empty());

    let history = timeline(&mut client, &customer).await.interactions;
    let kinds: Vec<i32> = history.iter().map(|i| i.kind).collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&(InteractionKind::Feedback as i32)));
    assert!(kinds.contains(&(InteractionKind::SurveyAnswer as i32)));
    let linked = history.iter().find(|i| i.name == given.interaction).expect("the feedback's interaction");
    assert_eq!(linked.feedback, given.name);

    let read = client.get_feedback(GetFeedbackRequest { name: given.name.clone() }).await.expect("get").into_inner();
    assert_eq!(read, given);
    let checkout = ListFeedbackRequest { topic: "checkout".into(), ..Default::default() };
    let listed = client.list_feedback(checkout).await.expect("list").into_inner().feedback;
    assert_eq!(listed.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), [&anonymous.name, &given.name]);
    let hers = ListFeedbackRequest { customer: by_id(&customer), ..Default::default() };
    assert_eq!(client.list_feedback(hers).await.expect("by customer").into_inner().feedback.len(), 2);

    let bad = Feedback { topic: "Check Out".into(), rating: Some(6), channel: 0, ..Default::default() };
    let status = client.record_feedback(request(None, bad)).await.expect_err("invalid");
    assert_invalid(&status, &["feedback.channel", "feedback.topic", "feedback.rating"]);
    env.cleanup().await;
}

#[tokio::test]
async fn the_summary_groups_by_topic_and_day_with_sentiment_and_ratings() {
    let env = TestEnv::monolith().await;
    let mut client = admin(&env).await;
    let day2 = Utc::now().date_naive().and_hms_opt(0, 0, 0).expect("midnight").and_utc() - Duration::days(1);
    let day1 = day2 - Duration::days(1);
    let at = |day: DateTime<Utc>, hours: i64| Some(day + Duration::hours(hours));
    // checkout: positive 5 (day 1), negative 1 (day 2), a suggestion without sentiment (day 2).
    give(&mut client, None, feedback("checkout", Sentiment::Positive, Some(5), at(day1, 9))).await;
    give(&mut client, None, feedback("checkout", Sentiment::Negative, Some(1), at(day2, 9))).await;
    let suggestion = Feedback {
        feedback_type: FeedbackType::Suggestion as i32,
        ..feedback("checkout", Sentiment::Unspecified, None, at(day2, 10))
    };
    let newest_checkout = give(&mut client, None, suggestion).await;
    // delivery: negative 2 (day 1).
    give(&mut client, None, feedback("delivery", Sentiment::Negative, Some(2), at(day1, 12))).await;

    let period =
        Some(Period { start_time: Some(timestamp(day1)), end_time: Some(timestamp(day2 + Duration::days(1))) });
    let by_topic =
        GetFeedbackSummaryRequest { period, group_by: vec![FeedbackGroupBy::Topic as i32], ..Default::default() };
    let summary = client.get_feedback_summary(by_topic).await.expect("summary").into_inner();
    let topics: Vec<(&str, i64)> = summary.groups.iter().map(|g| (g.topic.as_str(), g.count)).collect();
    assert_eq!(topics, [("checkout", 3), ("delivery", 1)]);
    let checkout = &summary.groups[0];
    assert_eq!((checkout.suggestions, checkout.positive, checkout.negative, checkout.unknown_sentiment), (1, 1, 1, 1));
    assert_eq!(checkout.net_sentiment, Some(0.0));
    assert_eq!(checkout.average_rating, Some(3.0));
    assert_eq!(checkout.recent_feedback.first(), Some(&newest_checkout.name));
    assert_eq!(summary.groups[1].net_sentiment, Some(-1.0));
    let total = summary.total.expect("total");
    assert_eq!(total.count, 4);
    assert!((total.net_sentiment.expect("net") - (-1.0 / 3.0)).abs() < 1e-9);
    assert!((total.average_rating.expect("rating") - 8.0 / 3.0).abs() < 1e-9);

    let by_day_and_topic = GetFeedbackSummaryRequest {
        period,
        group_by: vec![FeedbackGroupBy::Day as i32, FeedbackGroupBy::Topic as i32],
        ..Default::default()
    };
    let summary = client.get_feedback_summary(by_day_and_topic).await.expect("by day").into_inner();
    let groups: Vec<(String, &str, i64)> =
        summary.groups.iter().map(|g| (g.date.clone(), g.topic.as_str(), g.count)).collect();
    let (d1, d2) = (day1.date_naive().to_string(), day2.date_naive().to_string());
    assert_eq!(groups, [(d1.clone(), "checkout", 1), (d1, "delivery", 1), (d2, "checkout", 2)]);

    let none = GetFeedbackSummaryRequest { period: Some(Period::default()), ..Default::default() };
    let status = client.get_feedback_summary(none).await.expect_err("invalid");
    assert_invalid(&status, &["period.start_time", "period.end_time", "group_by"]);
    env.cleanup().await;
}
