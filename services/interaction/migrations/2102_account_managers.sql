-- Account managers and their books of key customers. A customer is in at most one book
-- (the primary key of `books`); history stays with the interactions, so moving a
-- customer only rewrites their book row.
CREATE TABLE account_managers (
    -- The last part of the name `accountManagers/{id}`: [a-z0-9-], or a UUID.
    id text PRIMARY KEY,
    display_name text NOT NULL,
    email text NOT NULL DEFAULT '',
    employee_id text NOT NULL DEFAULT '',
    team text NOT NULL DEFAULT '',
    capacity integer NOT NULL CHECK (capacity BETWEEN 1 AND 100000),
    -- 1 active, 2 inactive (AccountManagerState).
    state smallint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deactivated_at timestamptz,
    version bigint NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX account_managers_employee ON account_managers (employee_id) WHERE employee_id <> '';
CREATE INDEX account_managers_by_name ON account_managers (display_name, id);

CREATE TABLE books (
    customer_id uuid PRIMARY KEY,
    manager_id text NOT NULL REFERENCES account_managers (id),
    assigned_at timestamptz NOT NULL
);
-- A manager's book, most recently assigned first; and book sizes.
CREATE INDEX books_manager ON books (manager_id, assigned_at DESC, customer_id DESC);
