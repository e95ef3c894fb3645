-- The baseline: the same booking rules as Boxoffice, the way a conventional service
-- would write them, on PostgreSQL with SERIALIZABLE transactions. Reserved seats are one
-- row each; a general-admission pool is one row with held/booked counters; holds and
-- bookings are rows that own seats or quantities.

DROP TABLE IF EXISTS seats, pools, holds, events CASCADE;

CREATE TABLE events (
    id              integer PRIMARY KEY,
    name            text    NOT NULL,
    hold_ttl        interval NOT NULL DEFAULT interval '300 seconds',
    max_per_user    integer
);

CREATE TABLE seats (
    event_id   integer NOT NULL REFERENCES events (id),
    seat_no    integer NOT NULL,          -- dense index in layout order
    row_no     integer NOT NULL,
    category   text    NOT NULL,
    status     char(1) NOT NULL DEFAULT 'f',  -- f(ree), h(eld), b(ooked)
    hold_id    bigint,
    PRIMARY KEY (event_id, seat_no)
);
CREATE INDEX seats_free ON seats (event_id, category, row_no, seat_no) WHERE status = 'f';

CREATE TABLE pools (
    event_id  integer NOT NULL REFERENCES events (id),
    category  text    NOT NULL,
    capacity  integer NOT NULL,
    held      integer NOT NULL DEFAULT 0,
    booked    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, category),
    CHECK (held >= 0 AND booked >= 0 AND held + booked <= capacity)
);

CREATE TABLE holds (
    id          bigserial PRIMARY KEY,
    event_id    integer NOT NULL,
    user_id     text    NOT NULL,
    category    text,
    quantity    integer NOT NULL,
    status      char(1) NOT NULL DEFAULT 'h',  -- h(eld), c(onfirmed), r(eleased)
    expires_at  timestamptz NOT NULL,
    payment_ref text
);
CREATE INDEX holds_user ON holds (event_id, user_id) WHERE status IN ('h', 'c');
