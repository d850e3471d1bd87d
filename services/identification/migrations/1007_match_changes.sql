-- Every change to what the matcher compares (a customer's names, birth date or state;
-- its identifiers) is announced on channel identification_subjects with the
-- customer's id, so every replica's in-memory index stays current. Notifications are
-- sent at commit and deduplicated within a transaction.

CREATE FUNCTION announce_customer_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('identification_subjects', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER customers_announce_change
    AFTER INSERT OR UPDATE OF given_name, family_name, birth_year, birth_month, birth_day, state, kind
    ON customers FOR EACH ROW EXECUTE FUNCTION announce_customer_change();

CREATE FUNCTION announce_identifier_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('identification_subjects', OLD.customer_id::text);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('identification_subjects', NEW.customer_id::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER identifiers_announce_change
    AFTER INSERT OR DELETE OR UPDATE OF customer_id, state, shared, value
    ON identifiers FOR EACH ROW EXECUTE FUNCTION announce_identifier_change();
