-- What the outbox relay last saw of Redis: the epoch marker it found there. A different
-- (or missing) marker means Redis lost its streams, and the retained outbox is published
-- again. Kept in Postgres so a relay restarted together with Redis still notices.
CREATE TABLE bus_state (
    key   text PRIMARY KEY,
    value text NOT NULL
);
