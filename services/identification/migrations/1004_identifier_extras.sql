-- Indexes for listing the customer file in creation order (ListCustomers pages by
-- (create_time, id) after a cursor) under each of its filters, and for incremental
-- synchronisation by update time.

-- The state filter is always present (UNSPECIFIED means ACTIVE).
CREATE INDEX customers_by_state_create_time ON customers (state, create_time, id);
-- The contacts of one organisation, in order.
CREATE INDEX customers_by_parent_create_time ON customers (parent_id, create_time, id)
    WHERE parent_id IS NOT NULL;
-- Customers changed in a period.
CREATE INDEX customers_by_update_time ON customers (update_time);
-- Customers holding a role (few of them: distributors, partners).
CREATE INDEX customers_by_roles ON customers USING gin (roles) WHERE roles <> '{}';
