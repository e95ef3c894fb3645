-- pgbench script: an event's seat map (GET /v1/events/{id}/seats).
\set event random_zipfian(1, :events, 1.01)
SELECT seat_no, category, status FROM seats WHERE event_id = :event ORDER BY seat_no;
