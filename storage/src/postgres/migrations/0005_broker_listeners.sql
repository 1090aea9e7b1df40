-- Every listener a broker advertises (`NAME://host:port,...`, as Kafka's advertised.listeners),
-- so a client is told other brokers' addresses on the listener it came in by.
ALTER TABLE ductstream_brokers ADD COLUMN listeners text NOT NULL DEFAULT '';
