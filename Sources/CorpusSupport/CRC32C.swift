/// CRC-32C (Castagnoli), the checksum of iSCSI (RFC 3720, section 12.1 and the test vectors of
/// appendix B.4) and of TFRecord files, which frame TensorBoard's event files.
///
/// The reflected polynomial 0x82F63B78, initial value 0xFFFFFFFF and final exclusive-or
/// 0xFFFFFFFF; computed a byte at a time from a 256-entry table (Sarwate's method).
/// `checksum(Array("123456789".utf8)) == 0xE3069283`.
public enum CRC32C {
    /// The CRC-32C of `bytes`.
    /// Complexity: O(n) in the number of bytes.
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// `crc` masked as TFRecord stores it: rotated right by 15 bits plus the constant 0xA282EAD8
    /// (modulo 2^32). TensorFlow masks stored checksums because a CRC computed over data that
    /// itself holds CRCs is weak.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    /// `table[b]`: the CRC register after shifting the byte `b` through it, reflected form.
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 {
            value = value & 1 == 1 ? (value >> 1) ^ 0x82F6_3B78 : value >> 1
        }
        return value
    }
}
