-- Seeds the two scenarios at a scale (psql variables :events, :rows, :pool).
-- Theatre: :events shows of Stalls (rows 0-24), Circle (25-39), Balcony (40-49) × 40 seats,
-- rows scaled like `loadgen --scale`. Flash sale: event 1's pool of :pool tickets lives
-- in a separate database, see run.sh.
INSERT INTO events (id, name) SELECT e, 'Evening performance ' || e FROM generate_series(1, :events) AS e;
INSERT INTO seats (event_id, seat_no, row_no, category)
SELECT e, r * 40 + p, r,
       CASE WHEN r < :rows * 25 / 50 THEN 'Stalls' WHEN r < :rows * 40 / 50 THEN 'Circle' ELSE 'Balcony' END
FROM generate_series(1, :events) AS e, generate_series(0, :rows - 1) AS r, generate_series(0, 39) AS p;
ANALYZE;
