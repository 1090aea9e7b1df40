-- Kafka's commit metadata is any string, NUL included (librdkafka sends a trailing NUL), and a
-- Postgres `text` cannot hold NUL: keep the bytes.
ALTER TABLE ductstream_committed_offsets
    ALTER COLUMN metadata TYPE bytea USING convert_to(metadata, 'UTF8');
