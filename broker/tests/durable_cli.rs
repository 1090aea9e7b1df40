#![allow(clippy::expect_used)] // tests: a failed expectation is the report
//! `ductstream-admin stream ...` against the real broker, and gRPC server reflection (what
//! `grpcurl` uses to call the API without .proto files).

mod common;


use common::requests::{create_topic, produce_one};
use common::{admin, temp_broker};
use ductstream_storage::testsuite::make_batch;


/// As the streams document shows it: pull and ack with no create step; the first pull makes
/// the group with the defaults and says so.
#[test]
fn a_first_pull_creates_the_group() {
    let (_dir, broker) = temp_broker(&[]);
    let server = format!("http://{}", broker.grpc.expect("grpc"));
    create_topic(&mut broker.client(), "orders", 1, &[]);
    assert_eq!(produce_one(&mut broker.client(), "orders", 0, make_batch(3, 1_000, None)).0, 0);

    let (ok, pulled, out) = admin(&server, &["--json", "stream", "pull", "--stream", "orders", "--group", "search", "--max", "10", "--visibility", "30"]);
    assert!(ok, "{out}");
    assert!(out.contains("created durable consumer \"search\" on stream \"orders\""), "{out}");
    assert_eq!(pulled.as_array().map(Vec::len), Some(3));
    let (ok, acked, out) = admin(&server, &["--json", "stream", "ack", "--stream", "orders", "--group", "search", "--ids", "0-0,0-1,0-2"]);
    assert!(ok && acked["applied"].as_u64() == Some(3), "{out}");
    let (ok, got, out) = admin(&server, &["--json", "stream", "get", "--stream", "orders", "--group", "search"]);
    assert!(ok, "{out}");
    assert_eq!((got["ack_wait_ms"].as_u64(), got["deliver_policy"].as_str()), (Some(30_000), Some("all")), "{got}");
    let (ok, _, out) = admin(&server, &["stream", "pull", "--stream", "orders", "--group", "search"]);
    assert!(ok && !out.contains("created"), "the second pull creates nothing: {out}");
    let (ok, _, out) = admin(&server, &["stream", "pull", "--stream", "nowhere", "--group", "search"]);
    assert!(!ok && out.contains("stream \"nowhere\" does not exist"), "no group without its stream: {out}");

    let (_dir, strict) = temp_broker(&["--durable-auto-create", "false"]);
    let server = format!("http://{}", strict.grpc.expect("grpc"));
    create_topic(&mut strict.client(), "orders", 1, &[]);
    let (ok, _, out) = admin(&server, &["stream", "pull", "--stream", "orders", "--group", "search"]);
    assert!(!ok && out.contains("NotFound"), "{out}");
}

#[test]
fn the_admin_cli_creates_pulls_acks_and_replays() {
    let (_dir, broker) = temp_broker(&[]);
    let server = format!("http://{}", broker.grpc.expect("grpc"));
    create_topic(&mut broker.client(), "orders", 1, &[]);
    assert_eq!(produce_one(&mut broker.client(), "orders", 0, make_batch(3, 1_000, None)).0, 0);

    let (ok, created, out) = admin(&server, &["--json", "stream", "create", "--stream", "orders", "--group", "search", "--ack-wait", "45s", "--max-deliver", "5"]);
    assert!(ok, "{out}");
    assert_eq!((created["ack_wait_ms"].as_u64(), created["max_deliver"].as_u64()), (Some(45_000), Some(5)));

    let (ok, pulled, out) = admin(&server, &["--json", "stream", "pull", "--stream", "orders", "--group", "search", "--max", "2", "--visibility", "30"]);
    assert!(ok, "{out}");
    let ids: Vec<&str> = pulled.as_array().expect("array").iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["0-0", "0-1"]);
    assert_eq!(pulled[0]["delivery_count"].as_u64(), Some(1));

    let (ok, acked, out) = admin(&server, &["--json", "stream", "ack", "--stream", "orders", "--group", "search", "--ids", "0-0,0-1"]);
    assert!(ok, "{out}");
    assert_eq!(acked["applied"].as_u64(), Some(2));

    // Human output is a table; --pretty is indented JSON.
    let (ok, _, table) = admin(&server, &["stream", "list"]);
    assert!(ok && table.starts_with("STREAM") && table.contains("orders  search"), "{table}");
    let (ok, got, out) = admin(&server, &["--pretty", "stream", "get", "--stream", "orders", "--group", "search"]);
    assert!(ok && out.contains("\n  \"stats\""), "{out}");
    assert_eq!(got["stats"]["acked"].as_u64(), Some(2));

    let (ok, replayed, out) = admin(&server, &["--json", "stream", "replay", "--stream", "orders", "--group", "search", "--since", "1970-01-01T00:00:00Z"]);
    assert!(ok, "{out}");
    assert_eq!(replayed["partitions"][0]["next_offset"].as_i64(), Some(0));

    // Errors go to stderr with the server's words, and the exit status says so.
    let (ok, _, out) = admin(&server, &["stream", "ack", "--stream", "orders", "--group", "search", "--ids", "0-9"]);
    assert!(!ok && out.contains("never delivered"), "{out}");
    let (ok, _, out) = admin(&server, &["stream", "pull", "--stream", "orders", "--group", "nobody", "--no-create"]);
    assert!(!ok && out.contains("NotFound"), "{out}");
    let (ok, _, out) = admin("http://127.0.0.1:1", &["stream", "list"]);
    assert!(!ok && out.contains("cannot reach"), "{out}");
}

#[tokio::test]
async fn reflection_lists_the_stream_service() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let (_dir, broker) = temp_broker(&[]);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", broker.grpc.expect("grpc")))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let mut responses = client.server_reflection_info(tokio_stream::iter([request])).await.expect("reflection").into_inner();
    let response = responses.message().await.expect("response").expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list, got {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"ductstream.v1.StreamService".to_string()), "{names:?}");
}
