//! Drip dialogue: which one or two facts to ask a customer for at this contact. Never a
//! fact already known, never one the customer declined to give recently, never a
//! profiling question once profiling consent is withdrawn, and always with the reason
//! to state, since people refuse to answer when not told why.

use chrono::{DateTime, Duration, Utc};

use super::{
    consent::{Channel, Purpose},
    customer::CustomerKind,
    facts::ValueType,
};

/// A fact worth asking for, from the question catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The fact key the answer is recorded under.
    pub key: &'static str,
    /// The expected answer's type.
    pub value_type: ValueType,
    /// A suggested wording.
    pub prompt: &'static str,
    /// What the answer is used for.
    pub purpose: Purpose,
    /// The reason to state when asking.
    pub purpose_statement: &'static str,
    /// Relative usefulness, 0–1.
    pub usefulness: f64,
    /// Why the fact is useful.
    pub reason: &'static str,
    /// Whether the answer is free text (unsuited to SMS).
    pub free_text: bool,
    /// The kinds of customer the question is for.
    pub kinds: &'static [CustomerKind],
}

// One catalogue row per call: positional arguments keep the table readable.
#[allow(clippy::too_many_arguments)]
const fn q(
    key: &'static str,
    value_type: ValueType,
    prompt: &'static str,
    purpose: Purpose,
    purpose_statement: &'static str,
    usefulness: f64,
    reason: &'static str,
    free_text: bool,
    kinds: &'static [CustomerKind],
) -> Question {
    Question { key, value_type, prompt, purpose, purpose_statement, usefulness, reason, free_text, kinds }
}

const PERSON: &[CustomerKind] = &[CustomerKind::Person];
const ORG: &[CustomerKind] = &[CustomerKind::Organization];
const ANYONE: &[CustomerKind] = &[CustomerKind::Person, CustomerKind::Organization];
use ValueType::{Date, Int, String as Text};

/// The questions IDIC knows how to ask (NextQuestions orders them by usefulness).
pub const CATALOGUE: &[Question] = &[
    q(
        "preferred_channel",
        Text,
        "How would you like us to contact you?",
        Purpose::Service,
        "So we reach you the way you prefer, and only that way.",
        0.90,
        "every later contact depends on it",
        false,
        PERSON,
    ),
    q(
        "birth_date",
        Date,
        "When is your birthday?",
        Purpose::Marketing,
        "So we can wish you a happy birthday.",
        0.80,
        "birthday greetings",
        false,
        PERSON,
    ),
    q(
        "household.children",
        Int,
        "How many children live in your household?",
        Purpose::Profiling,
        "So the offers we send you fit your family.",
        0.70,
        "family offers and needs clusters",
        false,
        PERSON,
    ),
    q(
        "preference.size",
        Text,
        "What size do you usually wear?",
        Purpose::Profiling,
        "So we can suggest products that fit you.",
        0.65,
        "remembered specifications for made-to-measure products",
        true,
        PERSON,
    ),
    q(
        "preference.newsletter_topic",
        Text,
        "Which topics would you like to hear about?",
        Purpose::Marketing,
        "So our newsletter only covers what interests you.",
        0.60,
        "personalised newsletters",
        true,
        PERSON,
    ),
    q(
        "preferred_language",
        Text,
        "Which language do you prefer?",
        Purpose::Service,
        "So we write to you in your language.",
        0.50,
        "messages in the customer's language",
        false,
        ANYONE,
    ),
    q(
        "habit.shopping_day",
        Text,
        "Which day do you usually shop?",
        Purpose::Profiling,
        "So we time our offers to when you shop.",
        0.40,
        "timing of contacts",
        false,
        PERSON,
    ),
    q(
        "preferred_channel",
        Text,
        "How would you like us to contact your company?",
        Purpose::Service,
        "So we reach you the way you prefer.",
        0.90,
        "every later contact depends on it",
        false,
        ORG,
    ),
    q(
        "organization.employees",
        Int,
        "How many people work at your company?",
        Purpose::Profiling,
        "So we offer the services that suit a company of your size.",
        0.75,
        "service level and bundles",
        false,
        ORG,
    ),
    q(
        "organization.industry",
        Text,
        "Which industry is your company in?",
        Purpose::Profiling,
        "So we show you what companies like yours use.",
        0.65,
        "needs clusters for business customers",
        true,
        ORG,
    ),
];

/// What is known about the customer, as far as choosing questions needs it.
#[derive(Debug, Clone)]
pub struct Known<'a> {
    /// Person or organisation.
    pub kind: CustomerKind,
    /// Keys with a current value.
    pub known_keys: &'a [String],
    /// Keys the customer declined to answer, with when.
    pub declined: &'a [(String, DateTime<Utc>)],
    /// Whether profiling is allowed (consent).
    pub profiling_allowed: bool,
}

/// The `n` most useful questions to ask through `channel` now.
pub fn next_questions<'c>(
    known: &Known<'_>,
    channel: Option<Channel>,
    exclude: &[String],
    cool_down: Duration,
    now: DateTime<Utc>,
    n: usize,
) -> Vec<&'c Question> {
    let mut questions: Vec<&Question> = CATALOGUE
        .iter()
        .filter(|q| q.kinds.contains(&known.kind))
        .filter(|q| !known.known_keys.iter().any(|k| k == q.key))
        .filter(|q| !exclude.iter().any(|k| k == q.key))
        .filter(|q| !known.declined.iter().any(|(k, at)| k == q.key && now - *at < cool_down))
        .filter(|q| known.profiling_allowed || q.purpose != Purpose::Profiling)
        .filter(|q| !(q.free_text && channel == Some(Channel::Sms)))
        .collect();
    questions.sort_by(|a, b| b.usefulness.total_cmp(&a.usefulness));
    questions.truncate(n);
    questions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(questions: &[&Question]) -> Vec<&'static str> {
        questions.iter().map(|q| q.key).collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_790_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn asks_the_most_useful_unknown_facts_first() {
        let known = vec!["preferred_channel".to_owned()];
        let person = Known { kind: CustomerKind::Person, known_keys: &known, declined: &[], profiling_allowed: true };
        assert_eq!(
            keys(&next_questions(&person, None, &[], Duration::days(90), now(), 2)),
            ["birth_date", "household.children"]
        );
    }

    #[test]
    fn never_asks_again_within_the_cool_down_after_a_refusal() {
        let declined = vec![("birth_date".to_owned(), now() - Duration::days(10))];
        let person =
            Known { kind: CustomerKind::Person, known_keys: &[], declined: &declined, profiling_allowed: true };
        let asked = keys(&next_questions(&person, None, &[], Duration::days(90), now(), 10));
        assert!(!asked.contains(&"birth_date"));
        let later = keys(&next_questions(&person, None, &[], Duration::days(5), now(), 10));
        assert!(later.contains(&"birth_date"), "the cool-down has passed");
    }

    #[test]
    fn respects_withdrawn_profiling_sms_and_exclusions() {
        let person = Known { kind: CustomerKind::Person, known_keys: &[], declined: &[], profiling_allowed: false };
        let asked =
            next_questions(&person, Some(Channel::Sms), &["birth_date".to_owned()], Duration::days(90), now(), 10);
        assert!(asked.iter().all(|q| q.purpose != Purpose::Profiling && !q.free_text && q.key != "birth_date"));
        assert!(!asked.is_empty());
    }

    #[test]
    fn organisations_get_business_questions() {
        let org = Known { kind: CustomerKind::Organization, known_keys: &[], declined: &[], profiling_allowed: true };
        let asked = keys(&next_questions(&org, None, &[], Duration::days(90), now(), 2));
        assert_eq!(asked, ["preferred_channel", "organization.employees"]);
    }
}
