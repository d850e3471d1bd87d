-- Feedback and suggestions, from known customers (also on their timeline) or anonymous,
-- summarised for product design and management.
CREATE TABLE feedback (
    id uuid PRIMARY KEY,
    -- NULL for anonymous feedback.
    customer_id uuid,
    channel smallint NOT NULL,
    -- FeedbackType: 1 comment, 2 suggestion, 3 survey answer.
    feedback_type smallint NOT NULL,
    topic text NOT NULL,
    product_id text NOT NULL DEFAULT '',
    -- Sentiment: 0 unknown, 1 negative, 2 neutral, 3 positive, 4 mixed.
    sentiment smallint NOT NULL DEFAULT 0,
    rating smallint CHECK (rating BETWEEN 1 AND 5),
    text text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    -- The timeline interaction, `interactions/{id}`; empty when anonymous.
    interaction text NOT NULL DEFAULT '',
    campaign text NOT NULL DEFAULT ''
);
-- Lists (newest first) and summaries read a period.
CREATE INDEX feedback_created ON feedback (created_at DESC, id DESC);
CREATE INDEX feedback_topic ON feedback (topic, created_at);
CREATE INDEX feedback_customer ON feedback (customer_id, created_at DESC) WHERE customer_id IS NOT NULL;
