//! Feedback and its summaries: what a summary group's figures mean.

/// Counts of one summary group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SentimentCounts {
    /// Pieces of feedback.
    pub count: i64,
    /// Of them, positive.
    pub positive: i64,
    /// Of them, negative.
    pub negative: i64,
    /// Of them, without sentiment.
    pub unknown: i64,
}

/// (positive − negative) / (count − unknown), from −1 to 1; None when no feedback of the
/// group has a sentiment.
pub fn net_sentiment(c: SentimentCounts) -> Option<f64> {
    let known = c.count - c.unknown;
    (known > 0).then(|| (c.positive - c.negative) as f64 / known as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_sentiment_ignores_feedback_without_sentiment() {
        let c = SentimentCounts { count: 5, positive: 3, negative: 1, unknown: 1 };
        assert_eq!(net_sentiment(c), Some(0.5));
        assert_eq!(net_sentiment(SentimentCounts { count: 2, unknown: 2, ..Default::default() }), None);
    }
}
