// A durable consumer in Go: pulls from a stream's consumer group through the gRPC API
// (ductstream.v1.StreamService), prints each message as "<id> <value>", and acks it. The first
// pull creates the group. It learns the API from the broker's server reflection, so it needs
// no generated code.
//
//	cd examples/go && go run ./stream_consumer -endpoint localhost:8080 -stream orders -group search
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/jhump/protoreflect/desc"
	"github.com/jhump/protoreflect/dynamic"
	"github.com/jhump/protoreflect/dynamic/grpcdynamic"
	"github.com/jhump/protoreflect/grpcreflect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	endpoint := flag.String("endpoint", "localhost:8080", "the broker's gRPC address")
	stream := flag.String("stream", "", "the stream (a topic) to consume")
	group := flag.String("group", "", "the consumer group; the first pull creates it")
	max := flag.Uint("max", 10, "most messages per pull")
	visibility := flag.Duration("visibility", 30*time.Second, "how long pulled messages stay claimed")
	idleExit := flag.Int("idle-exit", 0, "stop after this many empty pulls in a row (each waits up to a second); 0: never")
	flag.Parse()
	if *stream == "" || *group == "" {
		fmt.Fprintln(os.Stderr, "usage: stream_consumer -endpoint HOST:PORT -stream NAME -group NAME [-max N] [-visibility 30s] [-idle-exit N]")
		os.Exit(2)
	}
	if err := consume(*endpoint, *stream, *group, uint32(*max), *visibility, *idleExit); err != nil {
		fmt.Fprintln(os.Stderr, "stream_consumer:", err)
		os.Exit(1)
	}
}

func consume(endpoint, stream, group string, max uint32, visibility time.Duration, idleExit int) error {
	ctx := context.Background()
	conn, err := grpc.Dial(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	reflection := grpcreflect.NewClientAuto(ctx, conn)
	defer reflection.Reset()
	service, err := reflection.ResolveService("ductstream.v1.StreamService")
	if err != nil {
		return fmt.Errorf("the broker's reflection: %w", err)
	}
	pull, ack := service.FindMethodByName("Pull"), service.FindMethodByName("Ack")
	stub := grpcdynamic.NewStub(conn)
	for idle := 0; idleExit == 0 || idle < idleExit; {
		request := dynamic.NewMessage(pull.GetInputType())
		request.SetFieldByName("stream", stream)
		request.SetFieldByName("group", group)
		request.SetFieldByName("max_messages", max)
		request.SetFieldByName("visibility_timeout_ms", uint64(visibility.Milliseconds()))
		request.SetFieldByName("max_wait_ms", uint64(1000))
		request.SetFieldByName("consumer_id", "stream_consumer.go")
		answer, err := call(ctx, stub, pull, request)
		if err != nil {
			return fmt.Errorf("pull: %w", err)
		}
		if created, _ := answer.GetFieldByName("created").(bool); created {
			fmt.Fprintf(os.Stderr, "created durable consumer %q on stream %q\n", group, stream)
		}
		messages, _ := answer.GetFieldByName("messages").([]interface{})
		if len(messages) == 0 {
			idle++
			continue
		}
		idle = 0
		ids := make([]string, 0, len(messages))
		for _, m := range messages {
			message, ok := m.(*dynamic.Message)
			if !ok {
				return fmt.Errorf("unexpected message %T", m)
			}
			id, _ := message.GetFieldByName("id").(string)
			value, _ := message.GetFieldByName("value").([]byte)
			fmt.Printf("%s %s\n", id, value)
			ids = append(ids, id)
		}
		acks := dynamic.NewMessage(ack.GetInputType())
		acks.SetFieldByName("stream", stream)
		acks.SetFieldByName("group", group)
		acks.SetFieldByName("ids", ids)
		if _, err := call(ctx, stub, ack, acks); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
	}
	return nil
}

func call(ctx context.Context, stub grpcdynamic.Stub, method *desc.MethodDescriptor, request *dynamic.Message) (*dynamic.Message, error) {
	answer, err := stub.InvokeRpc(ctx, method, request)
	if err != nil {
		return nil, err
	}
	return dynamic.AsDynamicMessage(answer)
}
