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

extension Digest {
    /// Lowercase hexadecimal form of the digest.
    var hexString: String {
        var out: [UInt8] = []
        out.reserveCapacity(Self.byteCount * 2)
        for byte in self {
            out.append(CanonicalJSON.hexDigits[Int(byte >> 4)])
            out.append(CanonicalJSON.hexDigits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
