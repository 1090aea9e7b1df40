-- Cluster membership: each broker renews its lease; a broker whose lease ran out is gone,
-- and the partitions it led and the groups it coordinated move to the live ones.
CREATE TABLE ductstream_brokers (
    node_id     integer PRIMARY KEY,
    host        text        NOT NULL,
    port        integer     NOT NULL,
    lease_until timestamptz NOT NULL
);
