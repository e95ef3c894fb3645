-- pgbench script: an event's availability per category (GET /v1/events/{id}).
\set event random_zipfian(1, :events, 1.01)
SELECT category, count(*) AS capacity, count(*) FILTER (WHERE status = 'f') AS free,
       count(*) FILTER (WHERE status = 'h') AS held, count(*) FILTER (WHERE status = 'b') AS booked
FROM seats WHERE event_id = :event GROUP BY category;
