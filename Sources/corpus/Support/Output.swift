import ArgumentParser
import CorpusDB
import CorpusSupport
import Foundation
import Ingest
import Quality

/// Where results and messages go: results to stdout, progress and errors to stderr.
enum Output {
    /// Writes `text` and a newline to standard error.
    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// Writes `text` to standard error without a newline (progress lines).
    static func progress(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Prints a JSON value (dictionaries, arrays, strings, numbers, NSNull) with sorted keys.
    /// Writes to stdout at once, without a newline (for a prompt or text as it is generated).
    static func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func printJSON(_ value: Any) {
        let data = (try? JSONSerialization.data(
            withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])) ?? Data("null".utf8)
        print(String(decoding: data, as: UTF8.self))
    }

    /// Parses JSON text stored in the database into a Foundation value (NSNull when invalid).
    static func jsonValue(_ text: String) -> Any {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) ?? NSNull()
    }

    /// Prints rows as an aligned plain-text table (columns padded by display width).
    static func printTable(header: [String], rows: [[String]]) {
        let all = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for row in all { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], displayWidth(cell)) } }
        for row in all {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += cell
                if i < row.count - 1 { line += String(repeating: " ", count: widths[i] - displayWidth(cell) + 2) }
            }
            print(line)
        }
    }

    /// Columns a string takes in a terminal: East Asian wide characters count two.
    static func displayWidth(_ s: String) -> Int {
        s.unicodeScalars.reduce(0) { width, scalar in
            let v = scalar.value
            let wide = (0x1100...0x115F).contains(v) || (0x2E80...0xA4CF).contains(v) || (0xAC00...0xD7A3).contains(v)
                || (0xF900...0xFAFF).contains(v) || (0xFE30...0xFE4F).contains(v) || (0xFF00...0xFF60).contains(v)
                || (0xFFE0...0xFFE6).contains(v) || (0x20000...0x3FFFD).contains(v)
            return width + (wide ? 2 : 1)
        }
    }

    /// The first `limit` characters of `text` on one line, with an ellipsis when cut.
    static func excerpt(_ text: String, _ limit: Int = 40) -> String {
        let flat = text.replacingOccurrences(of: "\r\n", with: " ").replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\t", with: " ")
        return flat.count > limit ? String(flat.prefix(limit)) + "…" : flat
    }
}

/// Exit codes, documented in docs/EXIT_CODES.md and in `corpus --help`.
enum Exit {
    static let internalError: Int32 = 1
    static let inputError: Int32 = 3
    static let storeError: Int32 = 4
    static let notFound: Int32 = 5
    static let verificationFailed: Int32 = 6
    static let interrupted: Int32 = 130

    /// Runs `body`, turning known errors into a message on stderr and their exit code.
    static func reporting<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as CorpusDBError {
            Output.error("error: \(error.message)")
            switch error.code {
            case .notFound: throw ExitCode(notFound)
            case .invalid: throw ExitCode(inputError)
            case .conflict: throw ExitCode(inputError)
            default: throw ExitCode(storeError)
            }
        } catch let error as IngestError {
            Output.error("error: \(error.message)")
            throw ExitCode(error.code == .interrupted ? interrupted : inputError)
        } catch let error as FileWriteError {
            // An output file or folder that could not be written (no space, no permission).
            Output.error("error: \(error.description)")
            throw ExitCode(inputError)
        } catch let error as QualityError {
            // A check configuration or taxonomy file that cannot be used: an input error.
            Output.error("error: \(error.message)")
            throw ExitCode(inputError)
        } catch {
            // SQLite's busy, full-disk and I/O failures, in words (exit 4: the store cannot be used now).
            guard let explained = CorpusDBError.explaining(error) else { throw error }
            Output.error("error: \(explained.message)")
            throw ExitCode(storeError)
        }
    }
}

/// With CORPUS_TIMING=1, prints the seconds since it was made at the end of each phase to stderr
/// (as `corpus ingest` does); silent otherwise.
final class PhaseTimer {
    private let start = Date()
    private let enabled = ProcessInfo.processInfo.environment["CORPUS_TIMING"] == "1"

    func mark(_ phase: @autoclosure () -> String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data((String(format: "  [timing] %@ done at %.3fs", phase(), Date().timeIntervalSince(start))
                                             + Self.memory() + "\n").utf8))
    }

    /// ", resident N MiB (peak M MiB)" from /proc/self/status where there is one (Linux), else "".
    static func memory() -> String {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return "" }
        func kilobytes(_ field: String) -> Int? {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field) }) else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.first
        }
        guard let resident = kilobytes("VmRSS:"), let peak = kilobytes("VmHWM:") else { return "" }
        return ", resident \(resident / 1024) MiB (peak \(peak / 1024) MiB)"
    }
}
