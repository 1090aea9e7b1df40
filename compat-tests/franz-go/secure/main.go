// franz-go over TLS and SASL (its own pkg/sasl/plain, pkg/sasl/scram and pkg/sasl/oauth): produces five
// records and reads them back, then tries a wrong password. Run as
//
//	franz-go-secure-compat BOOTSTRAP TOPIC CAFILE MECHANISM USER PASSWORD
//
// (CAFILE "" for no TLS, MECHANISM "" for no SASL). Prints one JSON line: {"values": [...],
// "wrongPassword": "..."} or {"error": "..."}.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func options(bootstrap, caFile, mechanism, user, password string) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(bootstrap), kgo.RequestRetries(2), kgo.AllowAutoTopicCreation()}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{RootCAs: pool}))
	}
	var m sasl.Mechanism
	switch mechanism {
	case "":
	case "PLAIN":
		m = plain.Auth{User: user, Pass: password}.AsMechanism()
	case "SCRAM-SHA-256":
		m = scram.Auth{User: user, Pass: password}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		m = scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
	case "OAUTHBEARER": // the password is the token
		m = oauth.Auth{Token: password}.AsMechanism()
	default:
		return nil, fmt.Errorf("unknown mechanism %q", mechanism)
	}
	if m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func run(ctx context.Context, topic string, opts []kgo.Opt) ([]string, error) {
	client, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	for i := 0; i < 5; i++ {
		if err := client.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("v%d", i))}).FirstErr(); err != nil {
			return nil, err
		}
	}
	var values []string
	for len(values) < 5 {
		fetches := client.PollFetches(ctx)
		if err := fetches.Err0(); err != nil {
			return values, err
		}
		fetches.EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
	}
	return values, nil
}

func main() {
	if len(os.Args) != 7 {
		fmt.Fprintln(os.Stderr, "usage: franz-go-secure-compat BOOTSTRAP TOPIC CAFILE MECHANISM USER PASSWORD")
		os.Exit(2)
	}
	bootstrap, topic, caFile, mechanism, user, password := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := map[string]any{}
	opts, err := options(bootstrap, caFile, mechanism, user, password)
	if err == nil {
		out["values"], err = run(ctx, topic, opts)
	}
	if err != nil {
		out["error"] = err.Error()
	}
	if mechanism != "" {
		bad, _ := options(bootstrap, caFile, mechanism, user, "wrong-password")
		client, err := kgo.NewClient(bad...)
		if err == nil {
			err = client.Ping(ctx)
			client.Close()
		}
		if err != nil {
			out["wrongPassword"] = err.Error()
		} else {
			out["wrongPassword"] = "connected"
		}
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}
