package dev.ductstream.compat;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.kafka.common.utils.AppInfoParser;
import org.junit.jupiter.api.Test;

/** Needs no broker: compat-tests/setup.sh runs it alone to resolve Surefire's JUnit provider. */
class ClientVersionTest {
    @Test
    void clientIsKafka41() {
        String v = AppInfoParser.getVersion();
        assertTrue(v.startsWith("4.1."), "kafka-clients version " + v);
    }
}
