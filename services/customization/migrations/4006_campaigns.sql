-- Campaigns with control groups: the campaign (its encoded body plus the columns the launch and
-- listings use), its members as snapshotted at launch with their arm and what became of the
-- contact, and the purchases and returns the reports measure (from interaction.recorded).
CREATE TABLE campaigns (
    campaign_id          text PRIMARY KEY,
    state                smallint NOT NULL,
    segment              text NOT NULL,
    body                 bytea NOT NULL,
    assignment_seed      text NOT NULL,
    launch_job           uuid,
    launch_time          timestamptz,
    measurement_end_time timestamptz,
    revision             bigint NOT NULL DEFAULT 1,
    create_time          timestamptz NOT NULL DEFAULT now(),
    update_time          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaigns_recent ON campaigns (create_time DESC, campaign_id DESC);

CREATE TABLE campaign_members (
    campaign_id   text NOT NULL REFERENCES campaigns (campaign_id),
    customer_id   uuid NOT NULL,
    -- 1 treatment, 2 control.
    arm           smallint NOT NULL,
    -- 0 not contacted yet (or control), 1 contacted, 2 refused.
    outcome       smallint NOT NULL DEFAULT 0,
    -- ContactRefusalReason number when refused.
    refusal       smallint NOT NULL DEFAULT 0,
    contact_time  timestamptz,
    PRIMARY KEY (campaign_id, customer_id)
);
CREATE INDEX campaign_members_customer ON campaign_members (customer_id);

-- One row per purchase or return: net amount (returns negative) and the categories bought.
CREATE TABLE purchases (
    interaction_id  text PRIMARY KEY,
    customer_id     uuid NOT NULL,
    occur_time      timestamptz NOT NULL,
    amount_minor    bigint NOT NULL,
    currency_code   text NOT NULL,
    categories      text[] NOT NULL,
    products        text[] NOT NULL
);
CREATE INDEX purchases_customer ON purchases (customer_id, occur_time);
