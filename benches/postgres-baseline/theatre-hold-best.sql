-- pgbench script: best available in a category (the lowest-numbered free seats), all or
-- nothing, then in the same SERIALIZABLE transaction (so a retried script leaves no
-- hold behind) a confirm 60% of the time or a release 15% of the time.
\set event random_zipfian(1, :events, 1.01)
\set quantity random(1, 4)
\set pick random(1, 3)
\set user random(1, :users)
\set next random(1, 100)

BEGIN ISOLATION LEVEL SERIALIZABLE;
WITH wanted AS (
    SELECT seat_no FROM seats
    WHERE event_id = :event AND category = (ARRAY['Stalls', 'Circle', 'Balcony'])[:pick] AND status = 'f'
    ORDER BY seat_no LIMIT :quantity
), hold AS (
    INSERT INTO holds (event_id, user_id, quantity, expires_at)
    SELECT :event, 'theatre-user-' || :user, :quantity, now() + interval '300 seconds' WHERE (SELECT count(*) FROM wanted) = :quantity
    RETURNING id
), taken AS (
    UPDATE seats SET status = 'h', hold_id = (SELECT id FROM hold)
    WHERE event_id = :event AND seat_no IN (SELECT seat_no FROM wanted) AND EXISTS (SELECT 1 FROM hold)
    RETURNING seat_no
)
SELECT coalesce((SELECT id FROM hold), 0) AS hold_id, coalesce((SELECT min(seat_no) FROM taken), 0) AS first_seat, coalesce((SELECT max(seat_no) FROM taken), 0) AS last_seat \gset

\if :hold_id > 0 AND :next <= 60
UPDATE holds SET status = 'c', payment_ref = 'pg-' || :hold_id WHERE id = :hold_id AND status = 'h' AND expires_at > now();
UPDATE seats SET status = 'b' WHERE event_id = :event AND seat_no BETWEEN :first_seat AND :last_seat AND hold_id = :hold_id;
\elif :hold_id > 0 AND :next <= 75
UPDATE holds SET status = 'r' WHERE id = :hold_id AND status = 'h';
UPDATE seats SET status = 'f', hold_id = NULL WHERE event_id = :event AND seat_no BETWEEN :first_seat AND :last_seat AND hold_id = :hold_id;
\endif
COMMIT;
