-- pgbench script: an exact-seat pick in one of 200 shows (Zipf-skewed), all or nothing,
-- then (like the theatre mix) a confirm 60% of the time or a release 15% of the time.
-- Rows have 40 seats; seat_no is row * 40 + position.
\set event random_zipfian(1, :events, 1.01)
\set quantity random(1, 4)
\set row random(0, :rows - 1)
\set first :row * 40 + random(0, 40 - :quantity)
\set last :first + :quantity - 1
\set user random(1, :users)
\set next random(1, 100)

BEGIN ISOLATION LEVEL SERIALIZABLE;
WITH free AS (
    SELECT count(*) AS n FROM seats WHERE event_id = :event AND seat_no BETWEEN :first AND :last AND status = 'f'
), hold AS (
    INSERT INTO holds (event_id, user_id, quantity, expires_at)
    SELECT :event, 'theatre-user-' || :user, :quantity, now() + interval '300 seconds' WHERE (SELECT n FROM free) = :quantity
    RETURNING id
), taken AS (
    UPDATE seats SET status = 'h', hold_id = (SELECT id FROM hold)
    WHERE event_id = :event AND seat_no BETWEEN :first AND :last AND EXISTS (SELECT 1 FROM hold)
    RETURNING seat_no
)
SELECT coalesce((SELECT id FROM hold), 0) AS hold_id, (SELECT count(*) FROM taken) AS taken \gset

\if :hold_id > 0 AND :next <= 60
UPDATE holds SET status = 'c', payment_ref = 'pg-' || :hold_id WHERE id = :hold_id AND status = 'h' AND expires_at > now();
UPDATE seats SET status = 'b' WHERE event_id = :event AND seat_no BETWEEN :first AND :last AND hold_id = :hold_id;
\elif :hold_id > 0 AND :next <= 75
UPDATE holds SET status = 'r' WHERE id = :hold_id AND status = 'h';
UPDATE seats SET status = 'f', hold_id = NULL WHERE event_id = :event AND seat_no BETWEEN :first AND :last AND hold_id = :hold_id;
\endif
COMMIT;
