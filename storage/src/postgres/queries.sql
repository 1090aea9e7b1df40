-- Every statement the Postgres engine runs. Each starts at a `-- name: <name>` marker and runs
-- to the next one; `Query` in queries.rs lists the names, and a unit test checks that both
-- sides agree. Statements are prepared once per pooled connection.
--
-- Most lookups start from a topic name and a partition: the `part` CTE resolves them to the
-- partition row, so that "no row at all" means an unknown topic or partition and the caller
-- asks `topic_partitions` which of the two it was.

-- name: migrations_lock
-- Held until the migrating transaction ends: brokers starting at once migrate one at a time.
SELECT pg_advisory_xact_lock(7305545530021110323)

-- name: migrations_table
CREATE TABLE IF NOT EXISTS ductstream_schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)

-- name: migrations_applied
SELECT version FROM ductstream_schema_migrations ORDER BY version

-- name: migrations_record
INSERT INTO ductstream_schema_migrations (version, name) VALUES ($1::integer, $2::text)

-- name: listen_appends
-- Run on the dedicated listening connection of PostgresStorage::subscribe_appends; appends and
-- DeleteRecords notify this channel with '<topic id>:<partition>:<high watermark>:<log start>'.
LISTEN ductstream_appends

-- name: topic_partitions
SELECT partitions FROM ductstream_topics WHERE name = $1::text

-- name: create_topic
WITH topic AS (
    INSERT INTO ductstream_topics (id, name, partitions, configs)
    VALUES ($1::uuid, $2::text, $3::integer, $4::jsonb)
    RETURNING id, partitions
)
INSERT INTO ductstream_partitions (topic_id, partition)
SELECT topic.id, p FROM topic, generate_series(0, topic.partitions - 1) AS p

-- name: delete_topic
-- Partitions go by ON DELETE CASCADE; batches and producer states are deleted here.
WITH topic AS (
    DELETE FROM ductstream_topics WHERE name = $1::text
    RETURNING id, name, partitions, configs
), batches AS (
    DELETE FROM ductstream_batches b USING topic WHERE b.topic_id = topic.id
), producers AS (
    DELETE FROM ductstream_producer_states s USING topic WHERE s.topic_id = topic.id
)
SELECT id, name, partitions, configs FROM topic

-- name: topics
SELECT id, name, partitions, configs FROM ductstream_topics ORDER BY name COLLATE "C"

-- name: topic
SELECT id, name, partitions, configs FROM ductstream_topics WHERE name = $1::text

-- name: topic_for_update
SELECT id, name, partitions, configs FROM ductstream_topics WHERE name = $1::text FOR UPDATE

-- name: grow_topic
UPDATE ductstream_topics SET partitions = $2::integer WHERE id = $1::uuid

-- name: add_partitions
INSERT INTO ductstream_partitions (topic_id, partition)
SELECT $1::uuid, p FROM generate_series($2::integer, $3::integer - 1) AS p

-- name: set_topic_configs
UPDATE ductstream_topics SET configs = $2::jsonb WHERE name = $1::text
RETURNING id, name, partitions, configs

-- name: reserve
-- The first step of a write to a partition: moves its next offset, running max timestamp and
-- byte position past the write ($3 offsets, $4 its max timestamp, $5 bytes) and returns them
-- as the write found them, from which the writer numbers its batches. The row lock is held to
-- the end of the transaction, so offsets have neither gaps nor duplicates whatever the number
-- of writers, and the wake-up for other brokers goes out at commit.
WITH old AS (
    SELECT p.topic_id, p.partition, p.next_offset, p.max_timestamp, p.next_position, p.log_start
    FROM ductstream_partitions p JOIN ductstream_topics t ON t.id = p.topic_id
    WHERE t.name = $1::text AND p.partition = $2::integer
    FOR UPDATE OF p
), part AS (
    UPDATE ductstream_partitions p
    SET next_offset = old.next_offset + $3::bigint,
        max_timestamp = GREATEST(old.max_timestamp, $4::bigint),
        next_position = old.next_position + $5::bigint
    FROM old
    WHERE p.topic_id = old.topic_id AND p.partition = old.partition
    RETURNING p.topic_id, p.next_offset
)
SELECT old.topic_id, old.next_offset, old.max_timestamp, old.next_position,
       pg_notify('ductstream_appends', part.topic_id::text || ':' || $2::integer::text || ':' || part.next_offset::text
                                       || ':' || old.log_start::text)
FROM old, part

-- name: copy_batches
-- The second step: the batches themselves, numbered by the writer from what `reserve`
-- returned, in binary COPY format (see writes.rs for the column encoding).
COPY ductstream_batches (topic_id, partition, base_offset, last_offset, record_count, max_timestamp,
    time_index, end_position, byte_size, producer_id, producer_epoch, base_sequence, data)
FROM STDIN (FORMAT binary)

-- name: save_producers
-- The last step: each idempotent producer's new state, one row per (topic, partition,
-- producer), as parallel arrays.
INSERT INTO ductstream_producer_states (topic_id, partition, producer_id, epoch, batches)
SELECT * FROM unnest($1::uuid[], $2::integer[], $3::bigint[], $4::smallint[], $5::jsonb[])
ON CONFLICT (topic_id, partition, producer_id)
DO UPDATE SET epoch = EXCLUDED.epoch, batches = EXCLUDED.batches

-- name: read
-- Rows: none when the partition does not exist; else (log_start, high watermark, batch) per
-- batch, or one row with a NULL batch when there is nothing to return. The batch holding
-- $3 is one probe of the last_offset index; the rest is a range over the end_position index
-- bounded by max_bytes ($4), or by the first batch alone when it is larger. LATERAL makes
-- both bounds index conditions of the inner scans (never a filter over the partition).
SELECT part.log_start, part.next_offset, found.data
FROM (
    SELECT p.topic_id, p.partition, p.log_start, p.next_offset
    FROM ductstream_partitions p JOIN ductstream_topics t ON t.id = p.topic_id
    WHERE t.name = $1::text AND p.partition = $2::integer
) part
LEFT JOIN LATERAL (
    SELECT b.end_position - b.byte_size AS start_position, b.byte_size
    FROM ductstream_batches b
    WHERE b.topic_id = part.topic_id AND b.partition = part.partition AND b.last_offset >= $3::bigint
      AND $3::bigint >= part.log_start AND $3::bigint < part.next_offset
    ORDER BY b.last_offset
    LIMIT 1
) first ON true
LEFT JOIN LATERAL (
    SELECT b.data, b.end_position
    FROM ductstream_batches b
    WHERE b.topic_id = part.topic_id AND b.partition = part.partition
      AND b.end_position > first.start_position
      AND b.end_position <= first.start_position + GREATEST($4::bigint, first.byte_size)
    ORDER BY b.end_position
) found ON true
ORDER BY found.end_position

-- name: offsets
SELECT p.log_start, p.next_offset
FROM ductstream_partitions p JOIN ductstream_topics t ON t.id = p.topic_id
WHERE t.name = $1::text AND p.partition = $2::integer

-- name: partition_size
-- Rows: none when the partition does not exist; else the bytes of its batches, from the two
-- ends of the end_position index (DeleteRecords frees whole batches).
SELECT COALESCE(
    (SELECT b.end_position FROM ductstream_batches b
     WHERE b.topic_id = p.topic_id AND b.partition = p.partition ORDER BY b.end_position DESC LIMIT 1)
  - (SELECT b.end_position - b.byte_size FROM ductstream_batches b
     WHERE b.topic_id = p.topic_id AND b.partition = p.partition ORDER BY b.end_position LIMIT 1),
    0)::bigint
FROM ductstream_partitions p JOIN ductstream_topics t ON t.id = p.topic_id
WHERE t.name = $1::text AND p.partition = $2::integer

-- name: retention_cut
-- Rows: none when the partition does not exist; else the base offset of the first batch from
-- which at most $3 bytes remain (NULL when none is), and the last batch's base offset, which
-- size retention never passes (as Kafka keeps the active segment).
WITH part AS (
    SELECT p.topic_id, p.partition
    FROM ductstream_partitions p JOIN ductstream_topics t ON t.id = p.topic_id
    WHERE t.name = $1::text AND p.partition = $2::integer
), last AS (
    SELECT b.end_position, b.base_offset
    FROM ductstream_batches b, part
    WHERE b.topic_id = part.topic_id AND b.partition = part.partition
    ORDER BY b.end_position DESC LIMIT 1
)
SELECT (
    SELECT b.base_offset FROM ductstream_batches b, part, last
    WHERE b.topic_id = part.topic_id AND b.partition = part.partition
      AND b.end_position > last.end_position - $3::bigint
      AND b.end_position - b.byte_size >= last.end_position - $3::bigint
    ORDER BY b.end_position LIMIT 1
), (SELECT base_offset FROM last)
FROM part

-- name: compactable_ranges
-- Every batch but the last, grouped into ranges of about $3 bytes by their place in the
-- partition's byte stream (end_position grows with the offset, so each group is a run of
-- consecutive batches): (first offset, end offset, bytes), oldest first.
SELECT min(b.base_offset), max(b.last_offset) + 1, sum(b.byte_size)::bigint
FROM ductstream_batches b JOIN ductstream_topics t ON t.id = b.topic_id
WHERE t.name = $1::text AND b.partition = $2::integer
  AND b.base_offset < (
    SELECT l.base_offset FROM ductstream_batches l
    WHERE l.topic_id = b.topic_id AND l.partition = b.partition
    ORDER BY l.base_offset DESC LIMIT 1)
GROUP BY (b.end_position - 1) / $3::bigint
ORDER BY 1

-- name: take_range
-- Compaction's first step: removes the batches based in [$3, $4) and returns what their
-- replacements need (position, running max timestamp). The row locks make a concurrent
-- DeleteRecords wait or win.
DELETE FROM ductstream_batches b USING ductstream_topics t
WHERE t.id = b.topic_id AND t.name = $1::text AND b.partition = $2::integer
  AND b.base_offset >= $3::bigint AND b.base_offset < $4::bigint
RETURNING b.topic_id, b.base_offset, b.last_offset, b.end_position, b.byte_size, b.time_index

-- name: put_range
-- Compaction's second step, in the same transaction: the rewritten batches, as parallel arrays.
INSERT INTO ductstream_batches (topic_id, partition, base_offset, last_offset, record_count, max_timestamp,
    time_index, end_position, byte_size, producer_id, producer_epoch, base_sequence, data)
SELECT $1::uuid, $2::integer, * FROM unnest($3::bigint[], $4::bigint[], $5::integer[], $6::bigint[], $7::bigint[],
    $8::bigint[], $9::integer[], $10::bigint[], $11::smallint[], $12::integer[], $13::bytea[])

-- name: batch_at_time
-- The first batch (in offset order) whose max timestamp is at or after $3. time_index never
-- decreases in offset order, so ordering by it orders by offset; every batch with
-- max_timestamp >= $3 has time_index >= $3.
SELECT found.data
FROM ductstream_partitions p
JOIN ductstream_topics t ON t.id = p.topic_id
LEFT JOIN LATERAL (
    SELECT b.data FROM ductstream_batches b
    WHERE b.topic_id = p.topic_id AND b.partition = p.partition
      AND b.time_index >= $3::bigint AND b.max_timestamp >= $3::bigint
    ORDER BY b.time_index, b.base_offset
    LIMIT 1
) found ON true
WHERE t.name = $1::text AND p.partition = $2::integer

-- name: batch_with_max_timestamp
-- The batch that raised the running max to its final value is the first one holding the
-- largest timestamp, while it is still stored. Returns (top running max, batch); a NULL batch
-- with a non-NULL max means records were deleted: see batch_with_max_timestamp_scan.
SELECT top.time_index, found.data
FROM ductstream_partitions p
JOIN ductstream_topics t ON t.id = p.topic_id
LEFT JOIN LATERAL (
    SELECT b.time_index FROM ductstream_batches b
    WHERE b.topic_id = p.topic_id AND b.partition = p.partition
    ORDER BY b.time_index DESC
    LIMIT 1
) top ON true
LEFT JOIN LATERAL (
    SELECT b.data FROM ductstream_batches b
    WHERE b.topic_id = p.topic_id AND b.partition = p.partition
      AND b.time_index = top.time_index AND b.max_timestamp = top.time_index
    ORDER BY b.base_offset
    LIMIT 1
) found ON true
WHERE t.name = $1::text AND p.partition = $2::integer

-- name: batch_with_max_timestamp_scan
-- The slow path after DeleteRecords removed the batch that set the running max.
SELECT b.data
FROM ductstream_batches b JOIN ductstream_topics t ON t.id = b.topic_id
WHERE t.name = $1::text AND b.partition = $2::integer
ORDER BY b.max_timestamp DESC, b.base_offset
LIMIT 1

-- name: delete_records
-- Raises log_start to $3 (never lowers it) and deletes the batches wholly below it. No row
-- when the partition does not exist or $3 is outside [0, high watermark]. Brokers learn the
-- new log start from the same notification as appends.
WITH part AS (
    UPDATE ductstream_partitions p
    SET log_start = GREATEST(p.log_start, $3::bigint)
    FROM ductstream_topics t
    WHERE t.name = $1::text AND p.topic_id = t.id AND p.partition = $2::integer
      AND $3::bigint BETWEEN 0 AND p.next_offset
    RETURNING p.topic_id, p.partition, p.log_start, p.next_offset
), gone AS (
    DELETE FROM ductstream_batches b USING part
    WHERE b.topic_id = part.topic_id AND b.partition = part.partition
      AND b.last_offset < part.log_start
)
SELECT part.log_start,
       pg_notify('ductstream_appends', part.topic_id::text || ':' || part.partition::text || ':' || part.next_offset::text
                                       || ':' || part.log_start::text)
FROM part

-- name: producers
-- Rows: none when the partition does not exist; else one per producer, or one NULL row.
SELECT s.producer_id, s.epoch, s.batches
FROM ductstream_partitions p
JOIN ductstream_topics t ON t.id = p.topic_id
LEFT JOIN ductstream_producer_states s ON s.topic_id = p.topic_id AND s.partition = p.partition
WHERE t.name = $1::text AND p.partition = $2::integer
ORDER BY s.producer_id

-- name: save_group
INSERT INTO ductstream_groups (group_id, state) VALUES ($1::text, $2::jsonb)
ON CONFLICT (group_id) DO UPDATE SET state = EXCLUDED.state

-- name: load_groups
SELECT state FROM ductstream_groups ORDER BY group_id COLLATE "C"

-- name: delete_group
WITH offsets AS (
    DELETE FROM ductstream_committed_offsets WHERE group_id = $1::text
)
DELETE FROM ductstream_groups WHERE group_id = $1::text

-- name: commit_offsets
-- All or none: one statement. The arrays are parallel, one element per partition, without
-- duplicate (topic, partition) pairs.
INSERT INTO ductstream_committed_offsets
    (group_id, topic, partition, committed_offset, leader_epoch, metadata, commit_timestamp)
SELECT $1::text, c.topic, c.partition, c.committed_offset, c.leader_epoch, c.metadata, c.commit_timestamp
FROM unnest($2::text[], $3::integer[], $4::bigint[], $5::integer[], $6::bytea[], $7::bigint[])
     AS c (topic, partition, committed_offset, leader_epoch, metadata, commit_timestamp)
ON CONFLICT (group_id, topic, partition) DO UPDATE SET
    committed_offset = EXCLUDED.committed_offset,
    leader_epoch = EXCLUDED.leader_epoch,
    metadata = EXCLUDED.metadata,
    commit_timestamp = EXCLUDED.commit_timestamp

-- name: committed_offsets
SELECT topic, partition, committed_offset, leader_epoch, metadata, commit_timestamp
FROM ductstream_committed_offsets
WHERE group_id = $1::text
ORDER BY topic COLLATE "C", partition

-- name: delete_offsets
DELETE FROM ductstream_committed_offsets o
USING unnest($2::text[], $3::integer[]) AS d (topic, partition)
WHERE o.group_id = $1::text AND o.topic = d.topic AND o.partition = d.partition

-- name: groups_with_offsets
SELECT DISTINCT group_id COLLATE "C" FROM ductstream_committed_offsets ORDER BY 1

-- name: all_committed_offsets
SELECT group_id, topic, partition, committed_offset, leader_epoch, metadata, commit_timestamp
FROM ductstream_committed_offsets
ORDER BY group_id COLLATE "C", topic COLLATE "C", partition

-- name: next_producer_id
SELECT nextval('ductstream_producer_ids')

-- name: broker_heartbeat
-- Takes or renews node $1's lease for $4 milliseconds, unless another live broker holds it.
INSERT INTO ductstream_brokers (node_id, host, port, lease_until, listeners)
VALUES ($1, $2, $3, now() + $4::float8 * interval '1 millisecond', $5)
ON CONFLICT (node_id) DO UPDATE
    SET host = excluded.host, port = excluded.port, lease_until = excluded.lease_until, listeners = excluded.listeners
    WHERE ductstream_brokers.lease_until < now()
       OR (ductstream_brokers.host, ductstream_brokers.port) = (excluded.host, excluded.port)
RETURNING node_id;

-- name: live_brokers
SELECT node_id, host, port, listeners FROM ductstream_brokers WHERE lease_until > now() ORDER BY node_id;

-- name: broker_holding
SELECT host, port FROM ductstream_brokers WHERE node_id = $1;

-- name: document
SELECT body FROM ductstream_documents WHERE kind = $1 AND key = $2 AND body IS NOT NULL;

-- name: documents
SELECT key, body FROM ductstream_documents WHERE kind = $1 AND body IS NOT NULL ORDER BY key COLLATE "C";

-- name: document_row
-- Makes sure the row exists, so that `document_for_update` has a row to lock even for a new
-- document; a NULL body means "absent".
INSERT INTO ductstream_documents (kind, key, body) VALUES ($1, $2, NULL) ON CONFLICT DO NOTHING;

-- name: document_for_update
SELECT body FROM ductstream_documents WHERE kind = $1 AND key = $2 FOR UPDATE;

-- name: document_write
UPDATE ductstream_documents SET body = $3 WHERE kind = $1 AND key = $2;
