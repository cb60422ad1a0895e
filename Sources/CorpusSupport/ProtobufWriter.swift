/// The few pieces of the protocol-buffer wire format that TensorBoard's `Event` needs, encoded by
/// hand (https://protobuf.dev/programming-guides/encoding/): a field is its key
/// `(field number << 3) | wire type` as a varint, then its value.
///
/// | wire type | used for | value |
/// | --- | --- | --- |
/// | 0 varint | int64 | 7 bits a byte, least significant first, high bit set on all but the last; negative numbers as their 64-bit two's complement (10 bytes) |
/// | 1 i64 | double | 8 bytes, little-endian IEEE 754 |
/// | 2 length-delimited | string, message | the byte count as a varint, then the bytes (UTF-8 for a string) |
/// | 5 i32 | float | 4 bytes, little-endian IEEE 754 |
struct ProtobufWriter {
    /// The encoded bytes so far.
    private(set) var bytes: [UInt8] = []

    /// An `int64` field.
    mutating func int64(_ field: Int, _ value: Int64) {
        key(field, wireType: 0)
        varint(UInt64(bitPattern: value))
    }

    /// A `double` field.
    mutating func double(_ field: Int, _ value: Double) {
        key(field, wireType: 1)
        littleEndian(value.bitPattern)
    }

    /// A `float` field.
    mutating func float(_ field: Int, _ value: Float) {
        key(field, wireType: 5)
        littleEndian(value.bitPattern)
    }

    /// A `string` field, as UTF-8.
    mutating func string(_ field: Int, _ value: String) {
        lengthDelimited(field, Array(value.utf8))
    }

    /// An embedded message field: `message` is that message's encoding.
    mutating func message(_ field: Int, _ message: [UInt8]) {
        lengthDelimited(field, message)
    }

    private mutating func lengthDelimited(_ field: Int, _ payload: [UInt8]) {
        key(field, wireType: 2)
        varint(UInt64(payload.count))
        bytes += payload
    }

    private mutating func key(_ field: Int, wireType: UInt64) {
        varint(UInt64(field) << 3 | wireType)
    }

    private mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    private mutating func littleEndian(_ value: some FixedWidthInteger) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
}
