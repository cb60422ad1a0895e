// The fuzz driver (docs/RELIABILITY.md, scripts/fuzz.sh). Built with CORPUS_FUZZ=1 it is a
// libFuzzer binary (-sanitize=fuzzer,address; Package.swift) whose target is chosen by the
// environment variable CORPUS_FUZZ_TARGET and whose arguments are libFuzzer's; built normally it
// replays saved inputs:
//   corpus-fuzz --list
//   corpus-fuzz TARGET FILE|FOLDER...      runs each input once (a finding crashes)
//   corpus-fuzz --print-tokenizer          the tokenizer.json the tokenizer targets use
import Foundation
import FuzzTargets

#if FUZZING
/// The target named by CORPUS_FUZZ_TARGET; with none or an unknown name, the list and exit 2.
enum Selected {
    static let target: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["CORPUS_FUZZ_TARGET"] ?? ""
        if let target = FuzzTarget.named(name) { return target }
        let list = FuzzTarget.all.map(\.name).joined(separator: ", ")
        FileHandle.standardError.write(Data("corpus-fuzz: set CORPUS_FUZZ_TARGET to one of: \(list) (got '\(name)')\n".utf8))
        exit(2)
    }()
}

/// libFuzzer's entry for a program with its own `main` (SwiftPM gives an executable the `main`
/// of its main.swift), documented in LLVM's libFuzzer manual.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

_ = Selected.target
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { start, count in
    let bytes = start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    Selected.target.run(bytes)
    return 0
})
#else
let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "--list":
    for target in FuzzTarget.all { print("\(target.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(target.summary)") }
case "--print-tokenizer":
    print(FuzzReplay.tokenizerJSON)
case let name? where FuzzTarget.named(name) != nil && arguments.count > 1:
    do {
        let target = FuzzTarget.all.first { $0.name == name } ?? FuzzTarget.all[0]
        let count = try FuzzReplay.run(target, paths: Array(arguments.dropFirst()))
        print("\(name): \(count) inputs, no finding")
    } catch {
        FileHandle.standardError.write(Data("corpus-fuzz: \(error)\n".utf8))
        exit(1)
    }
default:
    FileHandle.standardError.write(Data("usage: corpus-fuzz --list | --print-tokenizer | TARGET FILE|FOLDER... (targets: \(FuzzTarget.all.map(\.name).joined(separator: ", ")))\n".utf8))
    exit(2)
}
#endif
