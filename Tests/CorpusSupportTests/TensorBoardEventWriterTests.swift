@testable import CorpusSupport
import Foundation
import TestSupport
import Testing

/// The TensorBoard event files corpus writes: CRC-32C against the published vectors, the bytes of
/// events derived by hand from the protobuf encoding rules, whole files read back by a small
/// reader of our own, and the same files read by TensorBoard itself when a Python with the
/// `tensorboard` package is named by `CORPUS_TENSORBOARD_PYTHON` (scripts/test.sh sets it up).
@Suite("TensorBoard event files")
struct TensorBoardEventWriterTests {
    // MARK: CRC-32C

    /// RFC 3720 appendix B.4 and the usual check value of "123456789".
    static let crcVectors: [(bytes: [UInt8], crc: UInt32)] = [
        (Array("123456789".utf8), 0xE306_9283),
        ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ((0..<32).map { UInt8($0) }, 0x46DD_794E),
        ((0..<32).reversed().map { UInt8($0) }, 0x113F_DB5C),
        ([], 0),
    ]

    @Test(arguments: crcVectors)
    func crc32cKnownVectors(_ bytes: [UInt8], _ expected: UInt32) {
        #expect(CRC32C.checksum(bytes) == expected)
    }

    /// mask = ((crc >> 15) | (crc << 17)) + 0xa282ead8; 0xF207BE3A is the CRC of the 8 length
    /// bytes of a 23-byte record (`0x17 0 0 0 0 0 0 0`), whose masked value TensorBoard's Python
    /// `masked_crc32c` gives as 0x1EF8CEE7.
    @Test func maskedChecksum() {
        #expect(CRC32C.masked(0) == 0xA282_EAD8)
        #expect(CRC32C.checksum([0x17, 0, 0, 0, 0, 0, 0, 0]) == 0xF207_BE3A)
        #expect(CRC32C.masked(0xF207_BE3A) == 0x1EF8_CEE7)
        // 0x0000_8000 rotated right by 15 is 1; plus the constant.
        #expect(CRC32C.masked(0x0000_8000) == 0xA282_EAD9)
    }

    // MARK: Event bytes, by hand

    /// Event { wall_time: 1.5, step: 3, summary { value { tag: "a", simple_value: 0.25 } } }.
    static let smallEvent: [UInt8] = [
        0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF8, 0x3F,  // field 1, wire type 1 (i64): 1.5 = 0x3FF8000000000000, little-endian
        0x10, 0x03,                                            // field 2, varint: 3
        0x2A, 0x0A,                                            // field 5 (summary), length-delimited, 10 bytes
        0x0A, 0x08,                                            //   Summary.value (field 1), 8 bytes
        0x0A, 0x01, 0x61,                                      //     tag (field 1): "a"
        0x15, 0x00, 0x00, 0x80, 0x3E,                          //     simple_value (field 2, wire type 5 = i32): 0.25 = 0x3E800000
    ]

    @Test func oneScalarEventByHand() {
        let event = TensorBoardEvent(wallTime: 1.5, step: 3, content: .scalars([(tag: "a", value: 0.25)]))
        #expect(event.encoded() == Self.smallEvent)
    }

    @Test func fileVersionEventByHand() {
        let event = TensorBoardEvent(wallTime: 1.5, step: 0, content: .fileVersion("brain.Event:2"))
        // wall_time; no step (zero is proto3's default); field 3, length 13, "brain.Event:2".
        #expect(event.encoded() == [0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF8, 0x3F, 0x1A, 0x0D] + Array("brain.Event:2".utf8))
    }

    @Test func multiByteVarintAndNegativeValue() {
        let event = TensorBoardEvent(wallTime: 2, step: 300, content: .scalars([(tag: "x", value: -2.5)]))
        // 300 = 0b10_0101100 → 0xAC 0x02; -2.5 = 0xC0200000.
        #expect(event.encoded() == [0x09, 0, 0, 0, 0, 0, 0, 0x00, 0x40, 0x10, 0xAC, 0x02, 0x2A, 0x0A, 0x0A, 0x08, 0x0A, 0x01, 0x78,
                                    0x15, 0x00, 0x00, 0x20, 0xC0])
    }

    @Test func negativeStepChineseTagAndZeroValue() {
        let event = TensorBoardEvent(wallTime: 2, step: -1, content: .scalars([(tag: "训练/损失", value: 0)]))
        let tag = Array("训练/损失".utf8)
        #expect(tag.count == 13)
        // -1 as a varint: ten bytes (64-bit two's complement); simple_value 0 is written (a oneof member).
        let expected: [UInt8] = [0x09, 0, 0, 0, 0, 0, 0, 0x00, 0x40,
                                 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
                                 0x2A, 0x16, 0x0A, 0x14, 0x0A, 0x0D] + tag + [0x15, 0, 0, 0, 0]
        #expect(event.encoded() == expected)
    }

    /// The record around `smallEvent`: length 23, masked CRC of the length, the event, masked CRC
    /// of the event (0xBF2B6C88 before masking; TensorBoard's `masked_crc32c` gives 0x7B94692E).
    @Test func recordFramingByHand() {
        #expect(CRC32C.checksum(Self.smallEvent) == 0xBF2B_6C88)
        let expected: [UInt8] = [0x17, 0, 0, 0, 0, 0, 0, 0, 0xE7, 0xCE, 0xF8, 0x1E] + Self.smallEvent + [0x2E, 0x69, 0x94, 0x7B]
        #expect(TFRecord.frame(Self.smallEvent) == expected)
    }

    // MARK: Whole files

    @Test func fileReadBackRecordByRecord() throws {
        let directory = try TestSupport.temporaryDirectory("tensorboard").appendingPathComponent("logs/run-1")
        let writer = try TensorBoardEventWriter(directory: directory, wallTime: 1_700_000_000.25)
        try writer.scalar("train/loss", 2.5, step: 1, wallTime: 1_700_000_001)
        try writer.scalar("train/learning_rate", 2e-4, step: 1, wallTime: 1_700_000_001)
        try writer.scalar("train/loss", -0.125, step: 2, wallTime: 1_700_000_002.5)
        try writer.scalar("eval/损失", 1.75, step: 2, wallTime: 1_700_000_003)
        try writer.close()

        let events = try EventFileReader.read(writer.path)
        #expect(events.count == 5)
        #expect(events[0] == ReadEvent(wallTime: 1_700_000_000.25, step: 0, fileVersion: "brain.Event:2", values: []))
        #expect(events[1] == ReadEvent(wallTime: 1_700_000_001, step: 1, fileVersion: nil, values: [ReadValue(tag: "train/loss", value: 2.5)]))
        #expect(events[2] == ReadEvent(wallTime: 1_700_000_001, step: 1, fileVersion: nil,
                                       values: [ReadValue(tag: "train/learning_rate", value: Float(2e-4))]))
        #expect(events[3] == ReadEvent(wallTime: 1_700_000_002.5, step: 2, fileVersion: nil, values: [ReadValue(tag: "train/loss", value: -0.125)]))
        #expect(events[4] == ReadEvent(wallTime: 1_700_000_003, step: 2, fileVersion: nil, values: [ReadValue(tag: "eval/损失", value: 1.75)]))
    }

    @Test func nameLocationAndPermissions() throws {
        let directory = try TestSupport.temporaryDirectory("tensorboard").appendingPathComponent("new/folder")
        let writer = try TensorBoardEventWriter(directory: directory, wallTime: 1_700_000_000.9)
        defer { try? writer.close() }
        let host = TensorBoardEventWriter.hostname()
        #expect(writer.path.deletingLastPathComponent().standardizedFileURL.path == directory.standardizedFileURL.path)
        #expect(writer.path.lastPathComponent == "events.out.tfevents.1700000000.\(host).\(getpid()).0")
        let attributes = try FileManager.default.attributesOfItem(atPath: writer.path.path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        // The first event is on the file as soon as the writer exists (TensorBoard sees the run).
        #expect(try EventFileReader.read(writer.path).map(\.fileVersion) == ["brain.Event:2"])
    }

    @Test func fileNamesPadTheSecondsToTenDigits() {
        #expect(TensorBoardEventWriter.fileName(seconds: 42, host: "h", pid: 7, counter: 3) == "events.out.tfevents.0000000042.h.7.3")
        #expect(TensorBoardEventWriter.fileName(seconds: 1_700_000_000, host: "gpu-1", pid: 12, counter: 0)
                == "events.out.tfevents.1700000000.gpu-1.12.0")
    }

    /// Two writers started in the same second of one process (a resumed run, or two runs sharing a
    /// folder) get two files; each holds its own events.
    @Test func twoWritersInTheSameSecondGetTwoFiles() throws {
        let directory = try TestSupport.temporaryDirectory("tensorboard")
        let first = try TensorBoardEventWriter(directory: directory, wallTime: 1_700_000_000)
        let second = try TensorBoardEventWriter(directory: directory, wallTime: 1_700_000_000.5)
        #expect(first.path != second.path)
        #expect(first.path.lastPathComponent.hasSuffix(".\(getpid()).0"))
        #expect(second.path.lastPathComponent.hasSuffix(".\(getpid()).1"))
        try first.scalar("loss", 1, step: 1, wallTime: 1)
        try second.scalar("loss", 2, step: 2, wallTime: 2)
        try first.close()
        try second.close()
        #expect(try EventFileReader.read(first.path).last?.values == [ReadValue(tag: "loss", value: 1)])
        #expect(try EventFileReader.read(second.path).last?.values == [ReadValue(tag: "loss", value: 2)])
    }

    @Test func eventsReachTheFileOnFlush() throws {
        let writer = try TensorBoardEventWriter(directory: TestSupport.temporaryDirectory("tensorboard"), wallTime: 1)
        try writer.scalar("loss", 3, step: 1, wallTime: 2)
        try writer.flush()
        #expect(try EventFileReader.read(writer.path).count == 2)
        try writer.close()
        try writer.close()   // a second close does nothing
    }

    @Test func aFileWhereTheFolderShouldBeIsNamed() throws {
        let directory = try TestSupport.temporaryDirectory("tensorboard")
        let file = try TestSupport.write("not a folder", to: "logs", in: directory)
        #expect {
            _ = try TensorBoardEventWriter(directory: URL(fileURLWithPath: file), wallTime: 1)
        } throws: { error in
            guard let error = error as? FileWriteError else { return false }
            return error.path == file && error.message.hasPrefix("cannot create the folder for TensorBoard's event files")
        }
    }

    @Test func writingAfterCloseSaysSo() throws {
        let writer = try TensorBoardEventWriter(directory: TestSupport.temporaryDirectory("tensorboard"), wallTime: 1)
        try writer.close()
        #expect(throws: FileWriteError(path: writer.path.path,
                                       message: "the TensorBoard event file is closed; create a new TensorBoardEventWriter to write more")) {
            try writer.scalar("loss", 1, step: 1)
        }
    }

    // MARK: TensorBoard's own reader

    /// What the test writes for TensorBoard to read: two files, as a run resumed in a second
    /// process would leave them, with a slash in a tag, a Chinese tag and negative values.
    static let written: [(file: Int, tag: String, step: Int, value: Double)] = [
        (0, "train/loss", 1, 2.75), (0, "train/learning_rate", 1, 1e-4), (0, "损失/验证", 1, 3.5),
        (0, "train/loss", 2, 2.125), (0, "train/learning_rate", 2, 2e-4), (0, "reward", 2, -0.3),
        (1, "train/loss", 3, 1.9), (1, "train/learning_rate", 3, 1.5e-4), (1, "reward", 3, -1e-3),
        (1, "损失/验证", 3, 2.4), (1, "train/loss", 4, 1.6), (1, "train/learning_rate", 4, 0),
    ]

    @Test(.enabled(if: TensorBoardReader.python != nil, "set CORPUS_TENSORBOARD_PYTHON to a python with the tensorboard package (scripts/test.sh makes one in ~/.cache/corpus/tensorboard-venv)"))
    func tensorBoardReadsOurFiles() throws {
        let python = try #require(TensorBoardReader.python)
        let directory = try TestSupport.temporaryDirectory("tensorboard").appendingPathComponent("run")
        let writers = [try TensorBoardEventWriter(directory: directory, wallTime: 1_700_000_000),
                       try TensorBoardEventWriter(directory: directory, wallTime: 1_700_000_001)]
        for (file, tag, step, value) in Self.written {
            try writers[file].scalar(tag, value, step: step, wallTime: 1_700_000_000 + Double(step))
        }
        for writer in writers { try writer.close() }

        let read = try TensorBoardReader.read(directory: directory, python: python)
        print("TensorBoard \(read.version) read \(read.scalars.values.map(\.count).reduce(0, +)) scalars from \(directory.path)")
        // Each value as the bits of the float32 TensorBoard holds (JSON would round the decimals).
        var expected: [String: [[Int64]]] = [:]
        for (_, tag, step, value) in Self.written {
            expected[tag, default: []].append([Int64(step), Int64(Float(value).bitPattern)])
        }
        #expect(read.scalars == expected)
        #expect(read.tensors == expected)
        #expect(read.fileVersions == ["brain.Event:2", "brain.Event:2"])
    }
}

/// An event as the test's own reader decodes it.
struct ReadEvent: Equatable {
    var wallTime: Double
    var step: Int64
    var fileVersion: String?
    var values: [ReadValue]
}

struct ReadValue: Equatable {
    var tag: String
    var value: Float
}

/// A TFRecord and protobuf reader written for the tests from the format descriptions alone: every
/// length and CRC is checked, and unknown fields are an error.
enum EventFileReader {
    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    static func read(_ url: URL) throws -> [ReadEvent] {
        let bytes = [UInt8](try Data(contentsOf: url))
        var offset = 0
        var events: [ReadEvent] = []
        while offset < bytes.count {
            guard offset + 12 <= bytes.count else { throw Malformed(description: "truncated header at \(offset)") }
            let lengthBytes = Array(bytes[offset..<(offset + 8)])
            let length = Int(littleEndian(lengthBytes))
            guard UInt32(littleEndian(Array(bytes[(offset + 8)..<(offset + 12)]))) == CRC32C.masked(CRC32C.checksum(lengthBytes)) else {
                throw Malformed(description: "bad length CRC at \(offset)")
            }
            let start = offset + 12, end = start + length
            guard end + 4 <= bytes.count else { throw Malformed(description: "truncated record at \(offset)") }
            let data = Array(bytes[start..<end])
            guard UInt32(littleEndian(Array(bytes[end..<(end + 4)]))) == CRC32C.masked(CRC32C.checksum(data)) else {
                throw Malformed(description: "bad data CRC at \(offset)")
            }
            events.append(try event(data))
            offset = end + 4
        }
        return events
    }

    private static func littleEndian(_ bytes: [UInt8]) -> UInt64 {
        bytes.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    /// Fields of a message as (number, wire type, raw value: the varint or fixed bits, or the bytes).
    private static func fields(_ bytes: [UInt8]) throws -> [(number: Int, wireType: Int, bits: UInt64, payload: [UInt8])] {
        var index = 0
        func varint() throws -> UInt64 {
            var value: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard index < bytes.count, shift < 64 else { throw Malformed(description: "bad varint at \(index)") }
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
        }
        func take(_ n: Int) throws -> [UInt8] {
            guard n >= 0, index + n <= bytes.count else { throw Malformed(description: "field runs past the end at \(index)") }
            defer { index += n }
            return Array(bytes[index..<(index + n)])
        }
        var out: [(Int, Int, UInt64, [UInt8])] = []
        while index < bytes.count {
            let key = try varint()
            let number = Int(key >> 3), wireType = Int(key & 7)
            switch wireType {
            case 0: out.append((number, 0, try varint(), []))
            case 1: out.append((number, 1, littleEndian(try take(8)), []))
            case 2: out.append((number, 2, 0, try take(Int(try varint()))))
            case 5: out.append((number, 5, littleEndian(try take(4)), []))
            default: throw Malformed(description: "wire type \(wireType)")
            }
        }
        return out
    }

    private static func event(_ bytes: [UInt8]) throws -> ReadEvent {
        var event = ReadEvent(wallTime: 0, step: 0, fileVersion: nil, values: [])
        for field in try fields(bytes) {
            switch (field.number, field.wireType) {
            case (1, 1): event.wallTime = Double(bitPattern: field.bits)
            case (2, 0): event.step = Int64(bitPattern: field.bits)
            case (3, 2): event.fileVersion = String(decoding: field.payload, as: UTF8.self)
            case (5, 2):
                for value in try fields(field.payload) {
                    guard value.number == 1, value.wireType == 2 else { throw Malformed(description: "Summary field \(value.number)") }
                    var read = ReadValue(tag: "", value: .nan)
                    for part in try fields(value.payload) {
                        switch (part.number, part.wireType) {
                        case (1, 2): read.tag = String(decoding: part.payload, as: UTF8.self)
                        case (2, 5): read.value = Float(bitPattern: UInt32(part.bits))
                        default: throw Malformed(description: "Value field \(part.number)")
                        }
                    }
                    event.values.append(read)
                }
            default: throw Malformed(description: "Event field \(field.number)")
            }
        }
        return event
    }
}
