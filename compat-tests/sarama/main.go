// sarama-compat drives DuctStream with the Shopify/sarama client that Debian 12
// ships (1.22.1, protocol versions up to Kafka 2.2) and prints one JSON object
// per line on stdout, which compat-tests/test_sarama.py asserts on.
//
// Usage: sarama-compat <bootstrap host:port> <topic prefix>
//        sarama-compat <bootstrap host:port> <topic> read
//
// The second form reads partition 0 of the topic from its first offset to its end and prints
// the records as one JSON array of {offset, key, value} (test_compaction.py).
//
// Every step prints {"step": NAME, "ok": bool, "error": "...", ...}; a failed
// step does not stop the later ones (unless they depend on it) so a single run
// reports as many incompatibilities as possible.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/Shopify/sarama"
)

const perCodec = 5

type header struct {
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
}

type record struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Key       []byte   `json:"key"`
	Value     []byte   `json:"value"`
	Headers   []header `json:"headers"`
	Timestamp int64    `json:"timestamp_ms"`
}

func emit(step string, err error, fields map[string]interface{}) {
	out := map[string]interface{}{"step": step, "ok": err == nil}
	if err != nil {
		out["error"] = err.Error()
	}
	for k, v := range fields {
		out[k] = v
	}
	b, mErr := json.Marshal(out)
	if mErr != nil {
		fmt.Fprintf(os.Stderr, "marshal %s: %v\n", step, mErr)
		return
	}
	fmt.Println(string(b))
}

func baseConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "ductstream-compat-sarama"
	c.Version = sarama.V2_2_0_0 // newest version Debian's sarama 1.22.1 knows
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 10 * time.Second
	c.Net.WriteTimeout = 10 * time.Second
	c.Metadata.Retry.Max = 5
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = false
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Retry.Max = 2
	c.Producer.Timeout = 10 * time.Second
	// Flush the whole SendMessages batch as one request so compression
	// actually produces a multi-record compressed batch.
	c.Producer.Flush.Messages = perCodec
	c.Producer.Flush.Frequency = 50 * time.Millisecond
	c.Consumer.Return.Errors = true
	c.Consumer.Fetch.Default = 1 << 20
	c.Consumer.MaxWaitTime = 250 * time.Millisecond
	return c
}

func codecByName(name string) sarama.CompressionCodec {
	switch name {
	case "gzip":
		return sarama.CompressionGZIP
	case "snappy":
		return sarama.CompressionSnappy
	case "lz4":
		return sarama.CompressionLZ4
	case "zstd":
		return sarama.CompressionZSTD
	}
	return sarama.CompressionNone
}

func toRecord(m *sarama.ConsumerMessage) record {
	hs := make([]header, 0, len(m.Headers))
	for _, h := range m.Headers {
		hs = append(hs, header{Key: h.Key, Value: h.Value})
	}
	return record{
		Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Key: m.Key, Value: m.Value, Headers: hs,
		Timestamp: m.Timestamp.UnixNano() / int64(time.Millisecond),
	}
}

// consume reads up to want messages from topic/partition starting at offset,
// bounded by a deadline.
func consume(client sarama.Client, topic string, partition int32, offset int64, want int) ([]record, error) {
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, partition, offset)
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	var out []record
	deadline := time.After(20 * time.Second)
	for len(out) < want {
		select {
		case m := <-pc.Messages():
			out = append(out, toRecord(m))
		case cerr := <-pc.Errors():
			return out, cerr
		case <-deadline:
			return out, fmt.Errorf("timeout: got %d of %d messages", len(out), want)
		}
	}
	return out, nil
}

func produce(addrs []string, topic, codec string, base time.Time) ([]map[string]interface{}, error) {
	cfg := baseConfig()
	cfg.Producer.Compression = codecByName(codec)
	if codec == "zstd" {
		cfg.Version = sarama.V2_1_0_0
	}
	p, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, 0, perCodec)
	for i := 0; i < perCodec; i++ {
		m := &sarama.ProducerMessage{
			Topic:     topic,
			Partition: 0,
			Value:     sarama.StringEncoder(fmt.Sprintf("%s-value-%d", codec, i)),
			Headers: []sarama.RecordHeader{
				{Key: []byte("idx"), Value: []byte(strconv.Itoa(i))},
				{Key: []byte("codec"), Value: []byte(codec)},
			},
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		}
		if i != perCodec-1 { // last record has a null key
			m.Key = sarama.StringEncoder(fmt.Sprintf("key-%d", i))
		}
		msgs = append(msgs, m)
	}
	err = p.SendMessages(msgs)
	res := make([]map[string]interface{}, 0, len(msgs))
	for _, m := range msgs {
		res = append(res, map[string]interface{}{"partition": m.Partition, "offset": m.Offset})
	}
	return res, err
}

// readAll prints partition 0 of topic, from its first offset to its end, as a JSON array.
func readAll(addrs []string, topic string) error {
	client, err := sarama.NewClient(addrs, baseConfig())
	if err != nil {
		return err
	}
	defer client.Close()
	end, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		return err
	}
	type row struct {
		Offset int64   `json:"offset"`
		Key    *string `json:"key"`
		Value  *string `json:"value"`
	}
	str := func(b []byte) *string {
		if b == nil {
			return nil
		}
		s := string(b)
		return &s
	}
	rows := []row{}
	if end > 0 {
		consumer, err := sarama.NewConsumerFromClient(client)
		if err != nil {
			return err
		}
		defer consumer.Close()
		pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
		if err != nil {
			return err
		}
		defer pc.Close()
		timeout := time.After(30 * time.Second)
		for done := false; !done; {
			select {
			case m := <-pc.Messages():
				rows = append(rows, row{m.Offset, str(m.Key), str(m.Value)})
				done = m.Offset >= end-1
			case e := <-pc.Errors():
				return e
			case <-timeout:
				return fmt.Errorf("no end of partition within 30 s; read %d", len(rows))
			}
		}
	}
	out, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

func main() {
	if len(os.Args) == 4 && os.Args[3] == "read" {
		if err := readAll([]string{os.Args[1]}, os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: sarama-compat <bootstrap> <topic-prefix>")
		os.Exit(2)
	}
	addrs := []string{os.Args[1]}
	prefix := os.Args[2]
	if os.Getenv("SARAMA_DEBUG") != "" {
		sarama.Logger = newStderrLogger()
	}

	admin, err := sarama.NewClusterAdmin(addrs, baseConfig())
	emit("admin_connect", err, nil)
	if err != nil {
		os.Exit(1)
	}
	defer admin.Close()

	// ---- CreateTopic with a config entry, DescribeTopics, DescribeConfig
	retention := "3600000"
	err = admin.CreateTopic(prefix+"-admin", &sarama.TopicDetail{
		NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &retention},
	}, false)
	emit("create_topic", err, map[string]interface{}{"topic": prefix + "-admin"})

	md, err := admin.DescribeTopics([]string{prefix + "-admin"})
	f := map[string]interface{}{}
	if err == nil && len(md) == 1 {
		f["topic_error"] = int(md[0].Err)
		f["partitions"] = len(md[0].Partitions)
	}
	emit("describe_topics", err, f)

	// ClusterAdmin.DescribeConfig in sarama 1.22 always sends DescribeConfigs
	// v0. Use a separate admin so that a broker closing the connection on an
	// unsupported version does not break the steps after it.
	func() {
		admin2, err := sarama.NewClusterAdmin(addrs, baseConfig())
		if err != nil {
			emit("describe_config", err, nil)
			return
		}
		defer admin2.Close()
		entries, err := admin2.DescribeConfig(sarama.ConfigResource{
			Type: sarama.TopicResource, Name: prefix + "-admin",
		})
		cfgs := map[string]string{}
		for _, e := range entries {
			cfgs[e.Name] = e.Value
		}
		emit("describe_config", err, map[string]interface{}{"configs": cfgs, "request_version": 0})
	}()

	// The same question as a raw DescribeConfigs v1 request.
	func() {
		c, err := sarama.NewClient(addrs, baseConfig())
		if err != nil {
			emit("describe_config_v1", err, nil)
			return
		}
		defer c.Close()
		b, err := c.Controller()
		if err != nil {
			emit("describe_config_v1", err, nil)
			return
		}
		rsp, err := b.DescribeConfigs(&sarama.DescribeConfigsRequest{
			Version: 1,
			Resources: []*sarama.ConfigResource{
				{Type: sarama.TopicResource, Name: prefix + "-admin"},
			},
		})
		cfgs := map[string]string{}
		errCode := -1
		if err == nil && len(rsp.Resources) == 1 {
			errCode = int(rsp.Resources[0].ErrorCode)
			for _, e := range rsp.Resources[0].Configs {
				cfgs[e.Name] = e.Value
			}
		}
		emit("describe_config_v1", err, map[string]interface{}{"configs": cfgs, "error_code": errCode})
	}()

	err = admin.CreatePartitions(prefix+"-admin", 3, nil, false)
	emit("create_partitions", err, nil)
	md, err = admin.DescribeTopics([]string{prefix + "-admin"})
	f = map[string]interface{}{}
	if err == nil && len(md) == 1 {
		f["partitions"] = len(md[0].Partitions)
	}
	emit("describe_topics_after_create_partitions", err, f)

	// ---- produce + consume per compression codec
	client, err := sarama.NewClient(addrs, baseConfig())
	emit("client_connect", err, nil)
	if err != nil {
		os.Exit(1)
	}
	defer client.Close()

	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	for _, codec := range codecs {
		topic := prefix + "-" + codec
		if codec != "none" { // "none" exercises auto topic creation
			err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
			emit("create_topic", err, map[string]interface{}{"topic": topic})
		}
		base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		produced, err := produce(addrs, topic, codec, base)
		emit("produce", err, map[string]interface{}{
			"codec": codec, "topic": topic, "results": produced,
			"base_timestamp_ms": base.UnixNano() / int64(time.Millisecond),
		})
		if err != nil {
			continue
		}
		if rerr := client.RefreshMetadata(topic); rerr != nil {
			emit("refresh_metadata", rerr, map[string]interface{}{"topic": topic})
		}
		recs, err := consume(client, topic, 0, sarama.OffsetOldest, perCodec)
		emit("consume", err, map[string]interface{}{"codec": codec, "topic": topic, "records": recs})
	}

	// ---- offsets: oldest/newest, consume from a specific offset
	topic := prefix + "-none"
	oldest, err1 := client.GetOffset(topic, 0, sarama.OffsetOldest)
	newest, err2 := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if err1 == nil {
		err1 = err2
	}
	emit("get_offsets", err1, map[string]interface{}{"oldest": oldest, "newest": newest})

	recs, err := consume(client, topic, 0, 2, perCodec-2)
	emit("consume_from_offset", err, map[string]interface{}{"from": 2, "records": recs})

	// ---- DeleteRecords on its own topic, then the log start offset moves
	delTopic := prefix + "-del"
	produced, err := produce(addrs, delTopic, "none", time.Now())
	emit("produce", err, map[string]interface{}{"codec": "none", "topic": delTopic, "results": produced})
	if rerr := client.RefreshMetadata(delTopic); rerr != nil {
		emit("refresh_metadata", rerr, map[string]interface{}{"topic": delTopic})
	}
	err = admin.DeleteRecords(delTopic, map[int32]int64{0: 2})
	emit("delete_records", err, nil)
	oldest, err = client.GetOffset(delTopic, 0, sarama.OffsetOldest)
	emit("get_oldest_after_delete_records", err, map[string]interface{}{"oldest": oldest})
	recs, err = consume(client, delTopic, 0, sarama.OffsetOldest, perCodec-2)
	emit("consume_after_delete_records", err, map[string]interface{}{"records": recs})

	// ---- DeleteTopic, then the topic list (from metadata; ClusterAdmin.ListTopics
	// would also send DescribeConfigs v0 for every topic)
	err = admin.DeleteTopic(prefix + "-admin")
	emit("delete_topic", err, nil)
	func() {
		c, err := sarama.NewClient(addrs, baseConfig())
		if err != nil {
			emit("list_topics", err, nil)
			return
		}
		defer c.Close()
		names, err := c.Topics()
		sort.Strings(names)
		emit("list_topics", err, map[string]interface{}{"topics": names})
	}()
	emit("done", nil, nil)
}

type stderrLogger struct{}

func newStderrLogger() sarama.StdLogger { return stderrLogger{} }

func (stderrLogger) Print(v ...interface{})                 { fmt.Fprint(os.Stderr, v...) }
func (stderrLogger) Printf(format string, v ...interface{}) { fmt.Fprintf(os.Stderr, format, v...) }
func (stderrLogger) Println(v ...interface{})               { fmt.Fprintln(os.Stderr, v...) }
