use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::ParquetCompression;
use crate::{Result, SinkError, SinkRecord};

/// The records as one Parquet file with the columns of [`super::columns::batch`].
pub fn encode(records: &[SinkRecord], compression: ParquetCompression) -> Result<Bytes> {
    let batch = super::columns::batch(records)?;
    let codec = match compression {
        ParquetCompression::None => Compression::UNCOMPRESSED,
        ParquetCompression::Snappy => Compression::SNAPPY,
        ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
    };
    let properties = WriterProperties::builder().set_compression(codec).build();
    let failed = |e: parquet::errors::ParquetError| SinkError::Encode(e.to_string());
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties)).map_err(failed)?;
    writer.write(&batch).map_err(failed)?;
    Ok(Bytes::from(writer.into_inner().map_err(failed)?))
}

#[cfg(test)]
mod tests {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    #[test]
    fn writes_a_readable_file() -> Result<(), Box<dyn std::error::Error>> {
        let records: Vec<SinkRecord> = (0..10)
            .map(|i| SinkRecord {
                topic: "t".into(),
                partition: 0,
                offset: i,
                timestamp: 1_700_000_000_000 + i,
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
            })
            .collect();
        let file = encode(&records, ParquetCompression::Snappy)?;
        let reader = SerializedFileReader::new(file)?;
        assert_eq!(reader.metadata().file_metadata().num_rows(), 10);
        Ok(())
    }
}
