-- Small documents by kind and key: durable consumers' state, flows, checkpoints. Updates
-- take the row lock (created on first update), so several brokers update one atomically.
CREATE TABLE ductstream_documents (
    kind text NOT NULL,
    key text NOT NULL,
    body bytea,
    PRIMARY KEY (kind, key)
);
