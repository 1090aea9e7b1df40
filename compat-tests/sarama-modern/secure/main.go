// Current IBM/sarama over TLS and SASL: produces five records and reads them back, then tries a
// wrong password (for OAUTHBEARER the password is the token, and the wrong one is no JWT). Run as
//
//	sarama-secure-compat BOOTSTRAP TOPIC CAFILE MECHANISM USER PASSWORD HANDSHAKE_VERSION
//
// (CAFILE "" for no TLS, MECHANISM "" for no SASL, HANDSHAKE_VERSION 0 or 1: sarama's
// SASLHandshakeV0 sends bare tokens after the handshake). SCRAM uses github.com/xdg-go/scram,
// the client sarama's own examples use. Prints one JSON line: {"values": [...],
// "wrongPassword": "..."} or {"error": "..."}.
package main

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"hash"
	"os"
	"strconv"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// scramClient adapts xdg-go/scram to sarama's SCRAMClient.
type scramClient struct {
	hash         func() hash.Hash
	conversation *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := scram.HashGeneratorFcn(c.hash).NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conversation = client.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conversation.Step(challenge) }
func (c *scramClient) Done() bool                            { return c.conversation.Done() }

// staticToken hands sarama the same OAuth token every time.
type staticToken string

func (t staticToken) Token() (*sarama.AccessToken, error) { return &sarama.AccessToken{Token: string(t)}, nil }

func config(caFile, mechanism, user, password string, handshake int16) (*sarama.Config, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Metadata.Retry.Max = 1
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = &tls.Config{RootCAs: pool}
	}
	if mechanism != "" {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.User = user
		cfg.Net.SASL.Password = password
		cfg.Net.SASL.Mechanism = sarama.SASLMechanism(mechanism)
		cfg.Net.SASL.Version = handshake
		// sarama sends SaslHandshake v0 only to brokers it does not ask for ApiVersions.
		cfg.ApiVersionsRequest = handshake != sarama.SASLHandshakeV0
		switch mechanism {
		case sarama.SASLTypeSCRAMSHA256:
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: sha256.New} }
		case sarama.SASLTypeSCRAMSHA512:
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: sha512.New} }
		case sarama.SASLTypeOAuth:
			cfg.Net.SASL.TokenProvider = staticToken(password)
		}
	}
	return cfg, nil
}

func run(bootstrap, topic string, cfg *sarama.Config) ([]string, error) {
	client, err := sarama.NewClient([]string{bootstrap}, cfg)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		return nil, err
	}
	for i := 0; i < 5; i++ {
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprintf("v%d", i))}); err != nil {
			return nil, err
		}
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	partition, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		return nil, err
	}
	defer partition.Close()
	var values []string
	for len(values) < 5 {
		select {
		case m := <-partition.Messages():
			values = append(values, string(m.Value))
		case e := <-partition.Errors():
			return values, e
		}
	}
	return values, nil
}

func main() {
	if len(os.Args) != 8 {
		fmt.Fprintln(os.Stderr, "usage: sarama-secure-compat BOOTSTRAP TOPIC CAFILE MECHANISM USER PASSWORD HANDSHAKE_VERSION")
		os.Exit(2)
	}
	bootstrap, topic, caFile, mechanism, user, password := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	version, _ := strconv.Atoi(os.Args[7])
	out := map[string]any{}
	cfg, err := config(caFile, mechanism, user, password, int16(version))
	if err == nil {
		out["values"], err = run(bootstrap, topic, cfg)
	}
	if err != nil {
		out["error"] = err.Error()
	}
	if mechanism != "" {
		bad, _ := config(caFile, mechanism, user, "wrong-password", int16(version))
		if client, err := sarama.NewClient([]string{bootstrap}, bad); err != nil {
			out["wrongPassword"] = err.Error()
		} else {
			client.Close()
			out["wrongPassword"] = "connected"
		}
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}
