-- Message templates: the encoded `idic.customization.v1.MessageTemplate` (output-only fields
-- cleared, validated before every write) with the columns ListTemplates filters by.
CREATE TABLE message_templates (
    template_id  text PRIMARY KEY,
    channel      smallint NOT NULL,
    kind         smallint NOT NULL,
    languages    text[] NOT NULL,
    body         bytea NOT NULL,
    revision     bigint NOT NULL DEFAULT 1,
    create_time  timestamptz NOT NULL DEFAULT now(),
    update_time  timestamptz NOT NULL DEFAULT now()
);
