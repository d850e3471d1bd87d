-- The contact policy: one row holding the policy (domain::contact_policy::Policy as
-- JSON), changed by UpdateContactPolicy. No row means the initial policy.
CREATE TABLE contact_policy (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    policy jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    version bigint NOT NULL
);

-- Customers who must not be contacted, on some or all channels and purposes.
CREATE TABLE do_not_contact (
    customer_id uuid PRIMARY KEY,
    -- Channel and purpose numbers blocked; empty means all.
    channels smallint[] NOT NULL,
    purposes smallint[] NOT NULL,
    reason text NOT NULL,
    expire_time timestamptz,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL
);
CREATE INDEX do_not_contact_newest ON do_not_contact (created_at DESC, customer_id DESC);

-- A local copy of identification's consent decisions, kept current by its
-- `consent.changed` events, so that checks make no remote call. channel 0 is the
-- purpose's all-channel decision. Rows hold effective decisions as identification
-- computed them; the newest observed of a channel's row and the all-channel row decides.
CREATE TABLE consent_copy (
    customer_id uuid NOT NULL,
    purpose smallint NOT NULL,
    channel smallint NOT NULL,
    granted boolean NOT NULL,
    observe_time timestamptz NOT NULL,
    expire_time timestamptz,
    PRIMARY KEY (customer_id, purpose, channel)
);

-- Customers whose whole consent state was fetched from identification (GetConsents):
-- for them the copy is complete. Removed when an event brings a grant, whose expiry
-- events do not carry, so that the next check fetches it.
CREATE TABLE consent_snapshots (
    customer_id uuid PRIMARY KEY,
    fetched_at timestamptz NOT NULL
);

-- What the contact policy needs of a customer's profile (from identification's
-- GetCustomer): their time zone, refreshed daily.
CREATE TABLE customer_profiles (
    customer_id uuid PRIMARY KEY,
    time_zone text NOT NULL,
    fetched_at timestamptz NOT NULL
);

-- Outbound contacts of a customer in time order, for the frequency caps' count from
-- Postgres (interactions hold them; this index reads only the outbound ones).
CREATE INDEX interactions_outbound ON interactions (customer_id, occurred_at)
    WHERE direction = 2 AND kind IN (6, 8, 9);
