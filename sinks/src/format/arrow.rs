//! Arrow IPC files (the "Feather v2" file format): one record batch of [`super::columns::batch`].

use arrow_ipc::writer::FileWriter;
use bytes::Bytes;

use crate::{Result, SinkError, SinkRecord};

pub fn encode(records: &[SinkRecord]) -> Result<Bytes> {
    let batch = super::columns::batch(records)?;
    let failed = |e: arrow_schema::ArrowError| SinkError::Encode(e.to_string());
    let mut writer = FileWriter::try_new(Vec::new(), &batch.schema()).map_err(failed)?;
    writer.write(&batch).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(Bytes::from(writer.into_inner().map_err(failed)?))
}

#[cfg(test)]
mod tests {
    use arrow_ipc::reader::FileReader;

    use super::*;

    #[test]
    fn writes_a_readable_file() -> Result<(), Box<dyn std::error::Error>> {
        let records: Vec<SinkRecord> = (0..3)
            .map(|i| SinkRecord { topic: "t".into(), partition: 1, offset: i, timestamp: 0, key: None, value: Some(bytes::Bytes::from_static(b"v")), headers: vec![] })
            .collect();
        let file = encode(&records)?;
        let reader = FileReader::try_new(std::io::Cursor::new(file.to_vec()), None)?;
        let rows: usize = reader.map(|b| b.map(|b| b.num_rows())).sum::<Result<usize, _>>()?;
        assert_eq!(rows, 3);
        Ok(())
    }
}
