-- Erasure: receipts with each service's confirmation, erased identifiers kept only as
-- keyed hashes, and the one exception to the consent ledger's append-only rule.

CREATE TABLE erasures (
    id                         uuid PRIMARY KEY,
    customer_id                uuid        NOT NULL UNIQUE REFERENCES customers (id),
    merged_customer_ids        uuid[]      NOT NULL DEFAULT '{}',
    reason                     text        NOT NULL,
    requested_by               text        NOT NULL,
    request_time               timestamptz NOT NULL DEFAULT now(),
    complete_time              timestamptz,
    identifiers_erased         bigint      NOT NULL DEFAULT 0,
    facts_erased               bigint      NOT NULL DEFAULT 0,
    consent_records_anonymised bigint      NOT NULL DEFAULT 0
);
CREATE INDEX erasures_by_merged_customer ON erasures USING gin (merged_customer_ids);

CREATE TABLE erasure_confirmations (
    erasure_id   uuid NOT NULL REFERENCES erasures (id),
    service      text NOT NULL CHECK (service IN ('identification', 'interaction', 'segmentation', 'customization')),
    confirm_time timestamptz,
    PRIMARY KEY (erasure_id, service)
);

-- HMAC-SHA256 of `kind \x1f namespace \x1f value` under the erasure hash key, whose
-- fingerprint is key_id: it proves a value was erased (and lets the receipt count) but
-- gives nothing back.
CREATE TABLE erased_identifiers (
    id         bigserial PRIMARY KEY,
    erasure_id uuid  NOT NULL REFERENCES erasures (id),
    kind       text  NOT NULL,
    value_hash bytea NOT NULL,
    key_id     text  NOT NULL
);
CREATE INDEX erased_identifiers_by_hash ON erased_identifiers (value_hash);
CREATE INDEX erased_identifiers_by_erasure ON erased_identifiers (erasure_id);

-- The hash key used when none is configured (setting identification.erasure_hash_key):
-- made once here so hashes stay comparable across restarts and replicas. It sits beside
-- the hashes, so whoever holds a copy of the database can test guessed values against
-- them; production deployments configure a key kept outside the database.
CREATE TABLE erasure_hash_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key       bytea   NOT NULL
);
INSERT INTO erasure_hash_key (key)
    VALUES (sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text || clock_timestamp()::text, 'UTF8')));

-- Consent records stay as proof of what a customer decided, but an erasure detaches
-- them from personal data: it may clear the evidence reference (a form or message id
-- that leads back to the person) of a record whose customer is ERASED, changing nothing
-- else, in a transaction that set `identification.erasing` to 'on' for that statement.
-- Every other update, and every delete, is still refused.
CREATE OR REPLACE FUNCTION consent_records_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND current_setting('identification.erasing', true) = 'on'
        AND NEW.evidence_reference = ''
        AND to_jsonb(NEW) - 'evidence_reference' = to_jsonb(OLD) - 'evidence_reference'
        AND EXISTS (SELECT 1 FROM customers WHERE id = OLD.customer_id AND state = 'erased')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'consent_records is append-only';
END $$;
