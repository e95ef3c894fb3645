-- pgbench script: one flash-sale purchase attempt (flash-sale.toml): a user asks for one
-- general-admission ticket (per-user limit 1); when granted, confirms it. The hold and the
-- confirm run in ONE SERIALIZABLE transaction, so that pgbench's retry of a serialization
-- failure (--max-tries, it reruns the whole script) never leaves a hold behind; one commit
-- per purchase instead of the API's two favours PostgreSQL.
\set user random(1, :users)

BEGIN ISOLATION LEVEL SERIALIZABLE;
WITH mine AS (
    SELECT count(*) AS n FROM holds WHERE event_id = 1 AND user_id = 'flash-' || :user AND status IN ('h', 'c')
), taken AS (
    UPDATE pools SET held = held + 1
    WHERE event_id = 1 AND category = 'General' AND held + booked < capacity AND (SELECT n FROM mine) = 0
    RETURNING event_id
), hold AS (
    INSERT INTO holds (event_id, user_id, category, quantity, expires_at)
    SELECT event_id, 'flash-' || :user, 'General', 1, now() + interval '120 seconds' FROM taken
    RETURNING id
)
SELECT coalesce((SELECT id FROM hold), 0) AS hold_id \gset

\if :hold_id > 0
WITH confirmed AS (
    UPDATE holds SET status = 'c', payment_ref = 'pg-' || :hold_id
    WHERE id = :hold_id AND status = 'h' AND expires_at > now()
    RETURNING event_id, category
)
UPDATE pools SET held = held - 1, booked = booked + 1
FROM confirmed WHERE pools.event_id = confirmed.event_id AND pools.category = confirmed.category;
\endif
COMMIT;
