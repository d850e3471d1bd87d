-- Offers and what customers did with them. An offer is stored as its encoded
-- `idic.customization.v1.Offer` (output-only fields cleared) with the columns filters need;
-- presentations and responses are appended, with the counts kept per offer in the same
-- transaction.
CREATE TABLE offers (
    offer_id     text PRIMARY KEY,
    state        smallint NOT NULL,
    channels     smallint[] NOT NULL,
    products     text[] NOT NULL DEFAULT '{}',
    valid_from   timestamptz,
    valid_until  timestamptz,
    body         bytea NOT NULL,
    revision     bigint NOT NULL DEFAULT 1,
    presented    bigint NOT NULL DEFAULT 0,
    accepted     bigint NOT NULL DEFAULT 0,
    refused      bigint NOT NULL DEFAULT 0,
    create_time  timestamptz NOT NULL DEFAULT now(),
    update_time  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX offers_state ON offers (state);
CREATE INDEX offers_recent ON offers (create_time DESC, offer_id DESC);

CREATE TABLE offer_presentations (
    presentation_id  uuid PRIMARY KEY,
    offer_id         text NOT NULL REFERENCES offers (offer_id),
    customer_id      uuid NOT NULL,
    channel          smallint NOT NULL,
    campaign_id      text NOT NULL DEFAULT '',
    request_id       text UNIQUE,
    present_time     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX offer_presentations_customer ON offer_presentations (customer_id, offer_id, present_time);

CREATE TABLE offer_responses (
    response_id      uuid PRIMARY KEY,
    offer_id         text NOT NULL REFERENCES offers (offer_id),
    customer_id      uuid NOT NULL,
    -- OfferResponseKind: 1 accepted, 2 refused.
    kind             smallint NOT NULL,
    channel          smallint NOT NULL,
    presentation_id  uuid,
    campaign_id      text NOT NULL DEFAULT '',
    response_time    timestamptz NOT NULL,
    request_id       text UNIQUE,
    record_time      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX offer_responses_customer ON offer_responses (customer_id, offer_id, response_time);
