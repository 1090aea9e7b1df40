-- DuctStream's Postgres schema, version 1.
--
-- Every object carries the ductstream_ prefix so the schema can live next to an application's
-- own tables (CDC reads from the same kind of database).

CREATE TABLE ductstream_topics (
    id          uuid    PRIMARY KEY,
    name        text    NOT NULL UNIQUE,
    partitions  integer NOT NULL CHECK (partitions > 0),
    configs     jsonb   NOT NULL DEFAULT '{}'
);

-- One row per partition. Its row lock serialises appends (and deletes) to the partition: an
-- append moves next_offset forward with UPDATE ... RETURNING and inserts its batch in the same
-- statement, so offsets have neither gaps nor duplicates whatever the number of writers.
CREATE TABLE ductstream_partitions (
    topic_id       uuid    NOT NULL REFERENCES ductstream_topics (id) ON DELETE CASCADE,
    partition      integer NOT NULL,
    next_offset    bigint  NOT NULL DEFAULT 0,   -- the high watermark
    log_start      bigint  NOT NULL DEFAULT 0,
    max_timestamp  bigint,                       -- the largest batch max timestamp ever appended
    next_position  bigint  NOT NULL DEFAULT 0,   -- bytes ever appended: a virtual file position
    PRIMARY KEY (topic_id, partition)
);

-- One row per record batch, holding the producer's bytes with the base offset rewritten.
CREATE TABLE ductstream_batches (
    topic_id        uuid     NOT NULL,
    partition       integer  NOT NULL,
    base_offset     bigint   NOT NULL,
    last_offset     bigint   NOT NULL,
    record_count    integer  NOT NULL,
    max_timestamp   bigint   NOT NULL,
    -- The running max of max_timestamp over the partition up to and including this batch:
    -- it never decreases in offset order, so "the first batch whose max timestamp is at or
    -- after t" is an index range scan from time_index >= t.
    time_index      bigint   NOT NULL,
    -- Where this batch ends in the partition's virtual byte stream (next_position after it):
    -- a read of max_bytes is a bounded range scan on end_position.
    end_position    bigint   NOT NULL,
    byte_size       integer  NOT NULL,
    producer_id     bigint   NOT NULL,
    producer_epoch  smallint NOT NULL,
    base_sequence   integer  NOT NULL,
    data            bytea    NOT NULL,
    PRIMARY KEY (topic_id, partition, base_offset)
);
-- Batches are often compressed by the producer already: store them out of line without
-- trying pglz on them.
ALTER TABLE ductstream_batches ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE UNIQUE INDEX ductstream_batches_by_last_offset
    ON ductstream_batches (topic_id, partition, last_offset);
CREATE UNIQUE INDEX ductstream_batches_by_end_position
    ON ductstream_batches (topic_id, partition, end_position);
CREATE INDEX ductstream_batches_by_time
    ON ductstream_batches (topic_id, partition, time_index, base_offset);

-- What each idempotent producer wrote to a partition, saved by the append that wrote it.
CREATE TABLE ductstream_producer_states (
    topic_id     uuid     NOT NULL,
    partition    integer  NOT NULL,
    producer_id  bigint   NOT NULL,
    epoch        smallint NOT NULL,
    batches      jsonb    NOT NULL,   -- [{first_sequence, last_sequence, base_offset}], oldest first
    PRIMARY KEY (topic_id, partition, producer_id)
);

CREATE TABLE ductstream_groups (
    group_id  text  PRIMARY KEY,
    state     jsonb NOT NULL
);

CREATE TABLE ductstream_committed_offsets (
    group_id          text    NOT NULL,
    topic             text    NOT NULL,
    partition         integer NOT NULL,
    committed_offset  bigint  NOT NULL,
    leader_epoch      integer NOT NULL,
    metadata          text    NOT NULL,
    commit_timestamp  bigint  NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);

CREATE SEQUENCE ductstream_producer_ids AS bigint MINVALUE 0 START WITH 0;
