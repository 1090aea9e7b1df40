//! Topic set-up and inspection: create the topic if absent, read its
//! partition count and watermarks from the broker.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::client::ClientOpts;

/// Timeout for one metadata or offsets request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes sure `topic` exists, creating it with `partitions` partitions if it
/// is absent. Returns the partition count the topic actually has (which can
/// differ when it already existed).
pub fn ensure_topic(opts: &ClientOpts, topic: &str, partitions: u32) -> Result<u32> {
    ensure_topic_with(opts, topic, partitions, &[])
}

/// [`ensure_topic`], creating the topic with these topic configs (`cleanup.policy`, ...).
pub fn ensure_topic_with(opts: &ClientOpts, topic: &str, partitions: u32, configs: &[(String, String)]) -> Result<u32> {
    // The admin client is a librdkafka producer, which by default asks the
    // broker to auto-create topics it looks up (with the broker's default
    // partition count); the lookup below must not.
    let admin: AdminClient<DefaultClientContext> = opts
        .config(&[("allow.auto.create.topics", "false".to_string())])
        .create()
        .context("creating admin client")?;

    let existing = lookup_partitions(admin.inner(), topic)
        .with_context(|| format!("is a broker listening at {}?", opts.bootstrap))?;
    if let Some(existing) = existing {
        if existing != partitions {
            eprintln!(
                "ductstream-bench: topic `{topic}` already exists with {existing} partitions \
                 (asked for {partitions}); using it as is"
            );
        }
        return Ok(existing);
    }

    let num_partitions =
        i32::try_from(partitions).context("partition count does not fit in an i32")?;
    let new_topic = configs
        .iter()
        .fold(NewTopic::new(topic, num_partitions, TopicReplication::Fixed(1)), |t, (k, v)| t.set(k, v));
    let options = AdminOptions::new()
        .operation_timeout(Some(REQUEST_TIMEOUT))
        .request_timeout(Some(REQUEST_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &options))
        .with_context(|| format!("creating topic `{topic}`"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic `{name}` failed: {code}"),
        }
    }
    wait_for_topic(admin.inner(), topic)
}

/// Partition count of `topic`, or `None` when the broker says it does not
/// exist.
pub fn lookup_partitions<C: ClientContext>(client: &Client<C>, topic: &str) -> Result<Option<u32>> {
    let metadata = client
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .with_context(|| format!("fetching metadata for topic `{topic}`"))?;
    let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    if entry.error().is_some() || entry.partitions().is_empty() {
        return Ok(None);
    }
    Ok(Some(u32::try_from(entry.partitions().len())?))
}

/// Partition count of an existing topic; an error if it does not exist.
pub fn partition_count<C: ClientContext>(client: &Client<C>, topic: &str) -> Result<u32> {
    lookup_partitions(client, topic)?
        .ok_or_else(|| anyhow!("topic `{topic}` does not exist (or has no partitions)"))
}

/// Polls metadata until a freshly created topic shows up with partitions.
fn wait_for_topic<C: ClientContext>(client: &Client<C>, topic: &str) -> Result<u32> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        if let Some(partitions) = lookup_partitions(client, topic)? {
            return Ok(partitions);
        }
        if Instant::now() >= deadline {
            bail!("topic `{topic}` was created but does not appear in metadata");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// `(low, high)` watermark offsets of each partition `0..partitions`.
pub fn watermarks<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partitions: u32,
) -> Result<Vec<(i64, i64)>> {
    (0..partitions)
        .map(|p| {
            let partition = i32::try_from(p)?;
            client
                .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
                .with_context(|| format!("fetching watermarks of {topic}/{partition}"))
        })
        .collect()
}
