-- Segments: named rules over customer metrics, and their materialised membership.

-- One row per segment. `membership_state` is the idic.segmentation.v1.MembershipState
-- number; `request_id` makes a retried CreateSegment return the first segment.
CREATE TABLE segments (
    segment_id text PRIMARY KEY,
    display_name text NOT NULL,
    description text NOT NULL DEFAULT '',
    rule text NOT NULL,
    rule_version bigint NOT NULL DEFAULT 1,
    membership_state smallint NOT NULL DEFAULT 1,
    membership_job uuid,
    member_count bigint NOT NULL DEFAULT 0,
    membership_time timestamptz,
    creator text NOT NULL DEFAULT '',
    request_id text UNIQUE,
    etag text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now()
);
-- ListSegments pages by display name.
CREATE INDEX segments_by_display_name ON segments (display_name, segment_id);

-- Current members. The primary key pages ListSegmentMembers in customer id order; the
-- customer index answers GetCustomerSegments and the per-customer re-evaluation.
CREATE TABLE segment_members (
    segment_id text NOT NULL REFERENCES segments (segment_id) ON DELETE CASCADE,
    customer_id uuid NOT NULL,
    enter_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (segment_id, customer_id)
);
CREATE INDEX segment_members_customer ON segment_members (customer_id);

-- Orders the membership changes of one (segment, customer) in their events.
CREATE SEQUENCE segment_membership_sequence;
