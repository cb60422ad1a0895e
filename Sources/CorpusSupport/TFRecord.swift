/// TFRecord framing, the container of TensorBoard event files (TensorFlow's
/// `tensorflow/core/lib/io/record_writer.cc`): each record is
///
/// ```
/// uint64  length              little-endian byte count of data
/// uint32  masked CRC-32C of the 8 length bytes
/// byte    data[length]
/// uint32  masked CRC-32C of data
/// ```
///
/// with both checksums little-endian and masked by `CRC32C.masked`.
enum TFRecord {
    /// The bytes of one record holding `data`.
    static func frame(_ data: [UInt8]) -> [UInt8] {
        var record: [UInt8] = []
        record.reserveCapacity(data.count + 16)
        let length = littleEndianBytes(UInt64(data.count))
        record += length
        record += littleEndianBytes(CRC32C.masked(CRC32C.checksum(length)))
        record += data
        record += littleEndianBytes(CRC32C.masked(CRC32C.checksum(data)))
        return record
    }

    private static func littleEndianBytes(_ value: some FixedWidthInteger) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }
}
