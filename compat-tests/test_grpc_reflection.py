"""The gRPC API driven the way grpcurl drives it: no .proto files, only what the broker's
server reflection describes. Messages are built from the reflected descriptors and written as
JSON (grpcurl's -d), so this is an independent client of the ductstream.v1 API."""

import json

import grpc
from confluent_kafka import Producer
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


class ReflectedClient:
    """Calls any method by its full name with a JSON request, like `grpcurl -d`."""

    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.stub = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        self.pool = descriptor_pool.DescriptorPool()
        self.loaded: set[str] = set()

    def _ask(self, **request):
        responses = self.stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)]))
        return next(iter(responses))

    def services(self) -> list[str]:
        return [s.name for s in self._ask(list_services="").list_services_response.service]

    def _add_files(self, response):
        """Adds the files of a reflection answer, fetching missing imports by name first."""
        for raw in response.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            if proto.name in self.loaded:
                continue
            for dependency in proto.dependency:
                if dependency not in self.loaded:
                    self._add_files(self._ask(file_by_filename=dependency))
            self.pool.Add(proto)
            self.loaded.add(proto.name)

    def _load_symbol(self, symbol: str):
        self._add_files(self._ask(file_containing_symbol=symbol))

    def call(self, method: str, request: dict) -> dict:
        service_name, method_name = method.rsplit("/", 1)
        self._load_symbol(service_name)
        service = self.pool.FindServiceByName(service_name)
        m = service.FindMethodByName(method_name)
        request_class = message_factory.GetMessageClass(m.input_type)
        response_class = message_factory.GetMessageClass(m.output_type)
        rpc = self.channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=lambda msg: msg.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        message = json_format.ParseDict(request, request_class())
        return json_format.MessageToDict(rpc(message, timeout=30), preserving_proto_field_name=True)


def test_reflection_lists_every_service(broker):
    client = ReflectedClient(broker.grpc)
    services = client.services()
    for name in ["ductstream.v1.StreamService", "ductstream.v1.FlowService", "ductstream.v1.DDLService", "ductstream.v1.CheckpointService"]:
        assert name in services, services


def test_a_durable_consumer_through_reflection_only(broker):
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(3):
        producer.produce("reflected", key=f"k{i}", value=f"v{i}", partition=0)
    assert producer.flush(30) == 0

    client = ReflectedClient(broker.grpc)
    created = client.call(
        "ductstream.v1.StreamService/CreateConsumer",
        {"config": {"stream": "reflected", "group": "g", "ack_wait_ms": "60000", "max_deliver": 3}},
    )
    assert created["config"]["dead_letter_topic"] == "reflected.dlq"

    pulled = client.call("ductstream.v1.StreamService/Pull", {"stream": "reflected", "group": "g", "max_messages": 2, "visibility_timeout_ms": "30000"})
    messages = pulled["messages"]
    assert [m["id"] for m in messages] == ["0-0", "0-1"]
    # bytes fields are base64 in JSON, as grpcurl prints them.
    import base64

    assert base64.b64decode(messages[0]["value"]) == b"v0"
    assert messages[0]["delivery_count"] == 1

    acked = client.call("ductstream.v1.StreamService/Ack", {"stream": "reflected", "group": "g", "ids": ["0-0", "0-1"]})
    assert acked["applied"] == 2

    try:
        client.call("ductstream.v1.StreamService/Ack", {"stream": "reflected", "group": "g", "ids": ["0-2"]})
        raise AssertionError("acking an undelivered message must fail")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "never delivered" in e.details()

    described = client.call("ductstream.v1.StreamService/GetConsumer", {"stream": "reflected", "group": "g"})
    assert json.loads(json.dumps(described))["stats"]["acked"] == "2"  # uint64 is a JSON string


def test_flows_through_reflection_only(broker):
    client = ReflectedClient(broker.grpc)
    try:
        client.call("ductstream.v1.FlowService/CreateFlow", {"flow": {"id": "x", "source": {"type": "mysql"}}})
        raise AssertionError("a mysql source must be refused")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "mysql" in e.details()
    assert client.call("ductstream.v1.FlowService/ListFlows", {}) == {}
