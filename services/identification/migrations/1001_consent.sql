-- The consent ledger: one append-only row per decision a customer made for a purpose
-- and channel (channel '' = every channel of the purpose), with its provenance and
-- the purpose statement shown. The effective consent is derived from it.

CREATE TABLE consent_records (
    id                 bigserial PRIMARY KEY,
    customer_id        uuid        NOT NULL REFERENCES customers (id),
    purpose            text        NOT NULL,
    channel            text        NOT NULL DEFAULT '',
    status             text        NOT NULL CHECK (status IN ('granted', 'withdrawn')),
    purpose_statement  text        NOT NULL DEFAULT '',
    statement_version  text        NOT NULL DEFAULT '',
    source             text        NOT NULL,
    captured_channel   text        NOT NULL DEFAULT '',
    evidence_reference text        NOT NULL DEFAULT '',
    observe_time       timestamptz NOT NULL,
    expire_time        timestamptz,
    record_time        timestamptz NOT NULL DEFAULT now(),
    recorded_by        text        NOT NULL
);
CREATE INDEX consent_records_by_customer ON consent_records (customer_id, observe_time DESC, id DESC);

CREATE FUNCTION consent_records_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent_records is append-only';
END $$;
CREATE TRIGGER consent_records_append_only BEFORE UPDATE OR DELETE ON consent_records
    FOR EACH ROW EXECUTE FUNCTION consent_records_are_append_only();
