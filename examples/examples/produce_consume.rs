//! Produce a few keyed records with headers to DuctStream and read them back, with librdkafka.
//!
//! ```text
//! cargo run --release --bin ductstream            # in one terminal
//! cargo run -p ductstream-examples --example produce_consume -- --bootstrap 127.0.0.1:9092
//! ```

use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "example-orders")]
    topic: String,
    #[arg(long, default_value_t = 5)]
    count: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &args.bootstrap);

    let admin: AdminClient<DefaultClientContext> = config.create().context("admin client")?;
    let topic = NewTopic::new(&args.topic, 1, TopicReplication::Fixed(1));
    for result in admin.create_topics([&topic], &AdminOptions::new()).await? {
        match result {
            Ok(name) => println!("created topic {name}"),
            Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => println!("topic {name} exists"),
            Err((name, e)) => bail!("cannot create {name}: {e}"),
        }
    }

    let producer: FutureProducer = config.clone().set("enable.idempotence", "true").create().context("producer")?;
    let mut first_offset = None;
    for i in 0..args.count {
        let (key, value) = (format!("order-{i}"), format!("{{\"order\":{i},\"total\":{}}}", i * 10));
        let headers = OwnedHeaders::new().insert(Header { key: "source", value: Some("example") });
        let record = FutureRecord::to(&args.topic).key(&key).payload(&value).headers(headers);
        let delivery = producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e)?;
        first_offset.get_or_insert(delivery.offset);
        println!("produced {key} at partition {} offset {}", delivery.partition, delivery.offset);
    }

    let consumer: BaseConsumer = config
        .set("group.id", "example")
        .set("enable.auto.commit", "false")
        .create()
        .context("consumer")?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&args.topic, 0, Offset::Offset(first_offset.unwrap_or(0)))?;
    consumer.assign(&assignment)?;
    let mut read = 0;
    while read < args.count {
        let Some(message) = consumer.poll(Duration::from_secs(10)) else { bail!("no record within 10 s") };
        let message = message?;
        let source = message.headers().and_then(|h| h.iter().next()).and_then(|h| h.value).map(String::from_utf8_lossy);
        println!(
            "consumed offset {} key {} value {} header source={}",
            message.offset(),
            String::from_utf8_lossy(message.key().unwrap_or_default()),
            String::from_utf8_lossy(message.payload().unwrap_or_default()),
            source.unwrap_or_default()
        );
        read += 1;
    }
    Ok(())
}
