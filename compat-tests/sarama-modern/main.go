// Current IBM/sarama (pinned in go.mod, fetched through the Go module proxy) against a broker:
// admin, an idempotent producer in every codec, a partition consumer, and a consumer group of
// two members. Run as `sarama-modern-compat BOOTSTRAP TOPIC_PREFIX`; it prints one JSON line
// per step (test_sarama_modern.py asserts on them) and ends with {"step":"done"}.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

const (
	partitions = 3
	perCodec   = 20
)

var codecs = map[string]sarama.CompressionCodec{
	"none":   sarama.CompressionNone,
	"gzip":   sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

// step prints one result line.
func step(name string, err error, fields map[string]any) {
	out := map[string]any{"step": name, "ok": err == nil}
	if err != nil {
		out["error"] = err.Error()
	}
	for k, v := range fields {
		out[k] = v
	}
	line, jerr := json.Marshal(out)
	if jerr != nil {
		fmt.Printf("{\"step\":%q,\"ok\":false,\"error\":%q}\n", name, jerr.Error())
		return
	}
	fmt.Println(string(line))
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	// The newest protocol sarama knows for Kafka 4.1, the reference broker's version.
	c.Version = sarama.V4_1_0_0
	c.ClientID = "sarama-modern-compat"
	c.Net.DialTimeout = 10 * time.Second
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	return c
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: sarama-modern-compat BOOTSTRAP TOPIC_PREFIX")
		os.Exit(2)
	}
	brokers, prefix := []string{os.Args[1]}, os.Args[2]
	topic := prefix + "-t"
	if err := admin(brokers, topic); err != nil {
		step("done", err, nil)
		return
	}
	produced, err := produce(brokers, topic)
	if err != nil {
		step("done", err, nil)
		return
	}
	consumePartitions(brokers, topic, produced)
	group(brokers, topic, prefix+"-g", produced)
	step("done", nil, nil)
}

func admin(brokers []string, topic string) error {
	ca, err := sarama.NewClusterAdmin(brokers, config())
	if err != nil {
		step("admin_connect", err, nil)
		return err
	}
	defer ca.Close()
	err = ca.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": ptr("3600000")}}, false)
	step("create_topic", err, nil)
	if err != nil {
		return err
	}
	again := ca.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
	step("create_topic_again", nil, map[string]any{"already_exists": errors.Is(again, sarama.ErrTopicAlreadyExists)})
	metas, err := ca.DescribeTopics([]string{topic})
	fields := map[string]any{}
	if err == nil && len(metas) == 1 {
		fields["partitions"] = len(metas[0].Partitions)
		fields["error_code"] = int(metas[0].Err)
	}
	step("describe_topics", err, fields)
	entries, err := ca.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"}})
	values := map[string]string{}
	for _, e := range entries {
		values[e.Name] = e.Value
	}
	step("describe_config", err, map[string]any{"values": values})
	return nil
}

type record struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	Header    string `json:"header"`
}

// produce writes perCodec records in each codec with an idempotent producer (acks=all, one
// request in flight, as sarama requires for idempotence) and returns them with their offsets.
func produce(brokers []string, topic string) ([]record, error) {
	var all []record
	names := make([]string, 0, len(codecs))
	for name := range codecs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := config()
		c.Producer.Return.Successes = true
		c.Producer.RequiredAcks = sarama.WaitForAll
		c.Producer.Idempotent = true
		c.Net.MaxOpenRequests = 1
		c.Producer.Compression = codecs[name]
		c.Producer.Partitioner = sarama.NewManualPartitioner
		p, err := sarama.NewSyncProducer(brokers, c)
		if err != nil {
			step("producer", err, map[string]any{"codec": name})
			return nil, err
		}
		msgs := make([]*sarama.ProducerMessage, 0, perCodec)
		for i := 0; i < perCodec; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{
				Topic:     topic,
				Partition: int32(i % partitions),
				Key:       sarama.StringEncoder(fmt.Sprintf("%s-k%d", name, i)),
				Value:     sarama.StringEncoder(fmt.Sprintf("%s-v%d", name, i)),
				Headers:   []sarama.RecordHeader{{Key: []byte("codec"), Value: []byte(name)}},
			})
		}
		err = p.SendMessages(msgs)
		offsets := []int64{}
		for _, m := range msgs {
			offsets = append(offsets, m.Offset)
			all = append(all, record{Partition: m.Partition, Offset: m.Offset, Key: fmt.Sprint(m.Key), Value: fmt.Sprint(m.Value), Header: name})
		}
		step("produce", err, map[string]any{"codec": name, "count": len(msgs), "offsets": offsets})
		if cerr := p.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	return all, nil
}

// consumePartitions reads every partition from the oldest offset and reports what it read.
func consumePartitions(brokers []string, topic string, produced []record) {
	c, err := sarama.NewConsumer(brokers, config())
	if err != nil {
		step("consume", err, nil)
		return
	}
	defer c.Close()
	want := map[int32]int{}
	for _, r := range produced {
		want[r.Partition]++
	}
	var got []record
	for p := int32(0); p < partitions; p++ {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			step("consume", err, map[string]any{"partition": p})
			return
		}
		deadline := time.After(30 * time.Second)
		for n := 0; n < want[p]; n++ {
			select {
			case m := <-pc.Messages():
				header := ""
				for _, h := range m.Headers {
					if string(h.Key) == "codec" {
						header = string(h.Value)
					}
				}
				got = append(got, record{Partition: m.Partition, Offset: m.Offset, Key: string(m.Key), Value: string(m.Value), Header: header})
			case cerr := <-pc.Errors():
				step("consume", cerr, map[string]any{"partition": p})
				return
			case <-deadline:
				step("consume", fmt.Errorf("partition %d: %d of %d records after 30 s", p, n, want[p]), nil)
				return
			}
		}
		if err := pc.Close(); err != nil {
			step("consume", err, map[string]any{"partition": p})
			return
		}
	}
	step("consume", nil, map[string]any{"records": got})
}

// member is one consumer of the group; it records what it consumed and marks each offset.
type member struct {
	name     string
	mu       sync.Mutex
	claims   [][]int32
	consumed []record
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ps := range s.Claims() {
		m.claims = append(m.claims, append([]int32(nil), ps...))
	}
	return nil
}

func (m *member) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		m.mu.Lock()
		m.consumed = append(m.consumed, record{Partition: msg.Partition, Offset: msg.Offset, Key: string(msg.Key), Value: string(msg.Value)})
		m.mu.Unlock()
		s.MarkMessage(msg, "")
	}
	return nil
}

func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.consumed)
}

// group runs two members of one consumer group (round robin) until together they consumed
// every record, then reads the group's committed offsets back.
func group(brokers []string, topic, groupID string, produced []record) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	members := []*member{{name: "a"}, {name: "b"}}
	var wg sync.WaitGroup
	groups := make([]sarama.ConsumerGroup, 0, len(members))
	for _, m := range members {
		c := config()
		c.Consumer.Offsets.Initial = sarama.OffsetOldest
		c.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
		c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
		c.Consumer.Group.Session.Timeout = 10 * time.Second
		c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
		g, err := sarama.NewConsumerGroup(brokers, groupID, c)
		if err != nil {
			step("group", err, map[string]any{"member": m.name})
			return
		}
		groups = append(groups, g)
		wg.Add(1)
		go func(m *member, g sarama.ConsumerGroup) {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{topic}, m); err != nil && ctx.Err() == nil {
					step("group_consume_error", err, map[string]any{"member": m.name})
					time.Sleep(200 * time.Millisecond)
				}
			}
		}(m, g)
	}
	deadline := time.Now().Add(60 * time.Second)
	for members[0].count()+members[1].count() < len(produced) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	// Let the members settle on a two-member assignment and commit what they marked.
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	for _, g := range groups {
		if err := g.Close(); err != nil {
			step("group_close", err, nil)
		}
	}
	fields := map[string]any{}
	for _, m := range members {
		fields["claims_"+m.name] = m.claims
		fields["consumed_"+m.name] = m.consumed
	}
	step("group", nil, fields)

	ca, err := sarama.NewClusterAdmin(brokers, config())
	if err != nil {
		step("group_offsets", err, nil)
		return
	}
	defer ca.Close()
	resp, err := ca.ListConsumerGroupOffsets(groupID, map[string][]int32{topic: {0, 1, 2}})
	committed := map[string]int64{}
	if err == nil {
		for p, block := range resp.Blocks[topic] {
			committed[fmt.Sprint(p)] = block.Offset
		}
	}
	step("group_offsets", err, map[string]any{"committed": committed})
	described, err := ca.DescribeConsumerGroups([]string{groupID})
	fields = map[string]any{}
	if err == nil && len(described) == 1 {
		fields["state"] = described[0].State
		fields["protocol"] = described[0].Protocol
	}
	step("describe_group", err, fields)
}

func ptr(s string) *string { return &s }
