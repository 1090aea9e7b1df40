//! The `ductstream.v1` gRPC API (FlowService, StreamService, TopicService, DDLService) and its
//! tonic/prost generated code. The `.proto` files arrive with the CDC and durable-consumer work;
//! nothing is generated yet.
