// sarama-group-compat runs sarama 1.22.1 ConsumerGroup members (Debian's
// golang-github-shopify-sarama-dev) against DuctStream for
// compat-tests/test_groups_sarama.py.
//
// Usage: sarama-group-compat <bootstrap> <topic> <group> <members> <expect>
// (env SARAMA_OFFSETS_RETENTION_MS: Consumer.Offsets.Retention, default 24 h;
// 0 = sarama's default, which commits with OffsetCommit v1)
//
// Starts <members> ConsumerGroup instances in <group> on <topic>, marks every
// message (MarkMessage, metadata "sarama-<member>") and stops once <expect>
// messages have been consumed in total (or after 90 s), then closes the groups,
// which commits the marked offsets.  One JSON object per line on stdout:
//
//	{"ev":"setup","member":"m0","member_id":...,"generation":N,"claims":{topic:[...]}}
//	{"ev":"ready"}       every member holds a claim in the same generation
//	{"ev":"msg","member":"m0","partition":P,"offset":O,"value":"..."}
//	{"ev":"error","member":...,"error":...}
//	{"ev":"done","consumed":N,"timed_out":bool}
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

var outMu sync.Mutex

func emit(v map[string]interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "marshal: %v\n", err)
		return
	}
	outMu.Lock()
	fmt.Println(string(b))
	outMu.Unlock()
}

type state struct {
	mu       sync.Mutex
	consumed int
	expect   int
	claims   map[string]map[string][]int32 // member -> claims of its current session
	gens     map[string]int32
	ready    bool
	members  int
	done     chan struct{}
	doneOnce sync.Once
}

func (s *state) setup(member string, sess sarama.ConsumerGroupSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	claims := map[string][]int32{}
	for t, ps := range sess.Claims() {
		cp := append([]int32(nil), ps...)
		sort.Slice(cp, func(i, j int) bool { return cp[i] < cp[j] })
		claims[t] = cp
	}
	s.claims[member] = claims
	s.gens[member] = sess.GenerationID()
	emit(map[string]interface{}{"ev": "setup", "member": member, "member_id": sess.MemberID(),
		"generation": sess.GenerationID(), "claims": claims})
	if s.ready || len(s.claims) < s.members {
		return
	}
	var gen int32 = -1
	for m, c := range s.claims {
		n := 0
		for _, ps := range c {
			n += len(ps)
		}
		if n == 0 || (gen != -1 && s.gens[m] != gen) {
			return
		}
		gen = s.gens[m]
	}
	s.ready = true
	emit(map[string]interface{}{"ev": "ready"})
}

func (s *state) cleanup(member string) {
	s.mu.Lock()
	delete(s.claims, member)
	s.mu.Unlock()
}

func (s *state) add() {
	s.mu.Lock()
	s.consumed++
	n := s.consumed
	s.mu.Unlock()
	if n >= s.expect {
		s.doneOnce.Do(func() { close(s.done) })
	}
}

type handler struct {
	member string
	st     *state
}

func (h handler) Setup(sess sarama.ConsumerGroupSession) error {
	h.st.setup(h.member, sess)
	return nil
}

func (h handler) Cleanup(sarama.ConsumerGroupSession) error {
	h.st.cleanup(h.member)
	return nil
}

func (h handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		emit(map[string]interface{}{"ev": "msg", "member": h.member, "partition": msg.Partition,
			"offset": msg.Offset, "value": string(msg.Value)})
		sess.MarkMessage(msg, "sarama-"+h.member)
		h.st.add()
	}
	return nil
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: sarama-group-compat <bootstrap> <topic> <group> <members> <expect>")
		os.Exit(2)
	}
	bootstrap, topic, group := os.Args[1], os.Args[2], os.Args[3]
	members, _ := strconv.Atoi(os.Args[4])
	expect, _ := strconv.Atoi(os.Args[5])

	cfg := sarama.NewConfig()
	cfg.ClientID = "ductstream-compat-sarama-group"
	cfg.Version = sarama.V2_2_0_0 // >= V0_10_2_0 is needed for ConsumerGroup
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	cfg.Consumer.MaxWaitTime = 200 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	// sarama 1.22 commits with OffsetCommit v1 unless a retention is set, and
	// v2 (with retention_time_ms) if one is.  Kafka 4.0 (KIP-896) removed v0-v1.
	// SARAMA_OFFSETS_RETENTION_MS=0 keeps sarama's default (v1).
	retention := int64(24 * 3600 * 1000)
	if v := os.Getenv("SARAMA_OFFSETS_RETENTION_MS"); v != "" {
		retention, _ = strconv.ParseInt(v, 10, 64)
	}
	cfg.Consumer.Offsets.Retention = time.Duration(retention) * time.Millisecond

	st := &state{expect: expect, members: members, done: make(chan struct{}),
		claims: map[string]map[string][]int32{}, gens: map[string]int32{}}
	if expect <= 0 {
		close(st.done)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	groups := make([]sarama.ConsumerGroup, 0, members)
	for i := 0; i < members; i++ {
		name := fmt.Sprintf("m%d", i)
		cg, err := sarama.NewConsumerGroup([]string{bootstrap}, group, cfg)
		if err != nil {
			emit(map[string]interface{}{"ev": "error", "member": name, "error": "NewConsumerGroup: " + err.Error()})
			cancel()
			os.Exit(1)
		}
		groups = append(groups, cg)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for err := range cg.Errors() {
				emit(map[string]interface{}{"ev": "error", "member": name, "error": err.Error()})
			}
		}()
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				// Consume returns at every rebalance; call it again.
				if err := cg.Consume(ctx, []string{topic}, handler{member: name, st: st}); err != nil {
					emit(map[string]interface{}{"ev": "error", "member": name, "error": "Consume: " + err.Error()})
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}

	timedOut := false
	select {
	case <-st.done:
	case <-time.After(90 * time.Second):
		timedOut = true
	}
	cancel()
	for i, cg := range groups {
		if err := cg.Close(); err != nil { // commits the marked offsets
			emit(map[string]interface{}{"ev": "error", "member": fmt.Sprintf("m%d", i), "error": "Close: " + err.Error()})
		}
	}
	wg.Wait()
	st.mu.Lock()
	n := st.consumed
	st.mu.Unlock()
	emit(map[string]interface{}{"ev": "done", "consumed": n, "timed_out": timedOut})
}
