//! File and body formats shared by sinks: how a batch of records becomes bytes.

#[cfg(feature = "arrow")]
mod arrow;
#[cfg(feature = "avro")]
mod avro;
#[cfg(feature = "arrow")]
mod change_columns;
#[cfg(feature = "arrow")]
mod columns;
mod json;
#[cfg(feature = "parquet")]
mod parquet;
mod proto;

use bytes::Bytes;

use crate::{Result, SinkError, SinkRecord};

pub use json::{record_json, JsonLines};
pub use proto::{message as record_message, SinkRecordMessage};

/// A format a destination writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (see [`record_json`]).
    Json,
    /// Apache Parquet: columns topic, partition, offset, timestamp, key, value, headers.
    Parquet { compression: ParquetCompression },
    /// An Arrow IPC file with the same columns.
    Arrow,
    /// An Avro object container file, one record per Kafka record.
    Avro { compression: AvroCompression },
    /// `ductstream.v1.SinkRecord` messages, each after its varint length.
    Proto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvroCompression {
    None,
    Deflate,
    Snappy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCompression {
    None,
    Snappy,
    Zstd,
}

/// The format names destinations accept in their `format` option.
pub const FORMATS: &[&str] = &["json", "parquet", "arrow", "avro", "proto"];

impl Format {
    /// The format named `name`, with `compression` (`none`, `snappy`, `zstd`; file formats only).
    pub fn parse(name: &str, compression: Option<&str>) -> Result<Format> {
        match name {
            "json" => Ok(Format::Json),
            "parquet" => {
                let compression = match compression.unwrap_or("snappy") {
                    "none" | "uncompressed" => ParquetCompression::None,
                    "snappy" => ParquetCompression::Snappy,
                    "zstd" => ParquetCompression::Zstd,
                    other => return Err(SinkError::Config(format!("parquet compression {other:?}: use none, snappy or zstd"))),
                };
                if cfg!(feature = "parquet") {
                    Ok(Format::Parquet { compression })
                } else {
                    Err(SinkError::Config("this build has no parquet support (cargo feature `parquet` of ductstream-sinks)".into()))
                }
            }
            "arrow" if cfg!(feature = "arrow") => Ok(Format::Arrow),
            "arrow" => Err(SinkError::Config("this build has no arrow support (cargo feature `arrow` of ductstream-sinks)".into())),
            "avro" => {
                let compression = match compression.unwrap_or("snappy") {
                    "none" | "null" => AvroCompression::None,
                    "deflate" => AvroCompression::Deflate,
                    "snappy" => AvroCompression::Snappy,
                    other => return Err(SinkError::Config(format!("avro compression {other:?}: use none, deflate or snappy"))),
                };
                if cfg!(feature = "avro") {
                    Ok(Format::Avro { compression })
                } else {
                    Err(SinkError::Config("this build has no avro support (cargo feature `avro` of ductstream-sinks)".into()))
                }
            }
            "proto" => Ok(Format::Proto),
            other => Err(SinkError::Config(format!("unknown format {other:?}: use one of {}", FORMATS.join(", ")))),
        }
    }

    /// The file name extension.
    pub fn extension(&self) -> &'static str {
        match self {
            Format::Json => "jsonl",
            Format::Parquet { .. } => "parquet",
            Format::Arrow => "arrow",
            Format::Avro { .. } => "avro",
            Format::Proto => "binpb",
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            Format::Json => "application/x-ndjson",
            Format::Parquet { .. } => "application/vnd.apache.parquet",
            Format::Arrow => "application/vnd.apache.arrow.file",
            Format::Avro { .. } => "application/avro",
            Format::Proto => "application/x-protobuf",
        }
    }

    /// The records as one file.
    pub fn encode(&self, records: &[SinkRecord]) -> Result<Bytes> {
        match self {
            Format::Json => Ok(JsonLines::encode(records)),
            #[cfg(feature = "parquet")]
            Format::Parquet { compression } => parquet::encode(records, *compression),
            #[cfg(not(feature = "parquet"))]
            Format::Parquet { .. } => Err(SinkError::Config("this build has no parquet support".into())),
            #[cfg(feature = "arrow")]
            Format::Arrow => arrow::encode(records),
            #[cfg(not(feature = "arrow"))]
            Format::Arrow => Err(SinkError::Config("this build has no arrow support".into())),
            #[cfg(feature = "avro")]
            Format::Avro { compression } => avro::encode(records, *compression),
            #[cfg(not(feature = "avro"))]
            Format::Avro { .. } => Err(SinkError::Config("this build has no avro support".into())),
            Format::Proto => Ok(proto::encode(records)),
        }
    }
}
