import Crypto
import Foundation

/// Hashing used for lineage: standard SHA-256, lowercase hex, verifiable with `sha256sum`.
public enum ContentHash {
    /// Hex SHA-256 of `bytes`.
    public static func sha256Hex<D: DataProtocol>(_ bytes: D) -> String {
        SHA256.hash(data: bytes).hexString
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
        var out = ""
        out.reserveCapacity(Self.byteCount * 2)
        let digits: [Character] = Array("0123456789abcdef")
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return out
    }
}
