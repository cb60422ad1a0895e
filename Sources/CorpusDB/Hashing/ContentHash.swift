import Crypto
import Foundation

/// Hashing used for lineage: standard SHA-256, lowercase hex, verifiable with `sha256sum`.
public enum ContentHash {
    /// Hex SHA-256 of `bytes`.
    public static func sha256Hex<D: DataProtocol>(_ bytes: D) -> String {
        SHA256.hash(data: bytes).hexString
    }

    /// Hex SHA-256 of a byte array (the fast path: one contiguous buffer).
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { SHA256.hash(data: $0).hexString }
    }

    /// SHA-256 of a byte array as a fixed-size value (32 bytes, no allocation): a key for
    /// comparisons held per record over millions of records.
    public static func sha256Key(_ bytes: [UInt8]) -> SHA256Key {
        let digest = bytes.withUnsafeBytes { SHA256.hash(data: $0) }
        return digest.withUnsafeBytes { raw in
            SHA256Key(raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                      raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        }
    }

    /// Hex SHA-256 of a file, read in 4 MiB chunks.
    /// - Throws: the underlying file error.
    public static func sha256Hex(fileAt path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty {
            hasher.update(data: chunk)
        }
        return hasher.finalize().hexString
    }
}

/// A SHA-256 digest held as four words (equal digests, equal keys).
public struct SHA256Key: Hashable, Sendable {
    public var a: UInt64, b: UInt64, c: UInt64, d: UInt64
    public init(_ a: UInt64, _ b: UInt64, _ c: UInt64, _ d: UInt64) {
        self.a = a
        self.b = b
        self.c = c
        self.d = d
    }
}

extension Digest {
    /// Lowercase hexadecimal form of the digest (as `sha256sum` prints it).
    public var hexString: String {
        var out: [UInt8] = []
        out.reserveCapacity(Self.byteCount * 2)
        for byte in self {
            out.append(CanonicalJSON.hexDigits[Int(byte >> 4)])
            out.append(CanonicalJSON.hexDigits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
