// swift-tools-version:6.0
import PackageDescription

// Layout and dependency direction: see ../shared/DESIGN.md and docs/ARCHITECTURE.md.
// corpus -> {Ingest, Quality, Trainer} -> CorpusDB; Trainer -> ModelRuntime (no store); CorpusSupport
// beneath them all. Only one Swift module imports each C target.
// CORPUS_FUZZ=1 (scripts/fuzz.sh) builds the product corpus-fuzz as a libFuzzer binary: this
// package's own Swift and C code gets libFuzzer's coverage and the address sanitizer, the
// dependencies stay as they are (docs/RELIABILITY.md).
let fuzzing = Context.environment["CORPUS_FUZZ"] == "1"
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
] + (fuzzing ? [.unsafeFlags(["-sanitize=fuzzer,address"]), .define("FUZZING")] : [])
let fuzzCSettings: [CSetting] = fuzzing ? [.unsafeFlags(["-fsanitize=fuzzer-no-link,address"])] : []

let package = Package(
    name: "corpus",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "corpus", targets: ["corpus"]),
        .executable(name: "corpus-fuzz", targets: ["corpus-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // Already beneath Hummingbird; named so Serve can use their types (Logger, ByteBuffer, Channel).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        // ICU behind our own header: Foundation bundles its own ICU, so system ICU headers
        // must never be visible to Swift (DESIGN.md, Pitfalls).
        .target(
            name: "CICU",
            cSettings: fuzzCSettings,
            linkerSettings: [.linkedLibrary("icuuc"), .linkedLibrary("icui18n"), .linkedLibrary("icudata")]
        ),
        .systemLibrary(name: "CBLAS", providers: [.apt(["libopenblas-dev"])]),
        // Decoding kernels in C (AVX-512 chosen at run time): attention for one query.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])] + fuzzCSettings),
        // MinHash signatures for near duplicates (AVX-512 chosen at run time).
        .target(name: "CMinHash", cSettings: [.unsafeFlags(["-O3"])] + fuzzCSettings),
        // Atomic, durable file and folder writes and HTML escaping; Foundation only.
        .target(name: "CorpusSupport", swiftSettings: swiftSettings),
        .target(
            name: "CorpusDB",
            dependencies: [
                "CorpusSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                // SQLite's C API for the hottest insert (verdicts), through GRDB's own module map.
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Ingest",
            dependencies: ["CorpusDB", "CICU"],
            swiftSettings: swiftSettings
        ),
        .target(name: "Quality", dependencies: ["CorpusDB", "CMinHash", "CorpusSupport"], swiftSettings: swiftSettings),
        // The model runtime: tensors and kernels, model files, tokenizer, chat templates, the forward
        // pass with KV cache, generation, LoRA adapter files and merge. What answering needs.
        .target(name: "ModelRuntime", dependencies: ["CBLAS", "CKernels", "CorpusSupport"], swiftSettings: swiftSettings),
        // Training (forward/backward, AdamW, the loop) and evaluation, on top of the runtime.
        .target(name: "Trainer", dependencies: ["ModelRuntime", "CorpusSupport"], swiftSettings: swiftSettings),
        // `corpus serve`: the OpenAI-compatible HTTP server and its decoding scheduler (docs/SERVE.md).
        // It links the runtime, not the trainer or the store.
        .target(
            name: "Serve",
            dependencies: [
                "ModelRuntime", "CKernels",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "corpus",
            dependencies: [
                "CorpusDB", "CorpusSupport", "Ingest", "Quality", "ModelRuntime", "Trainer", "Serve",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // One entry per fuzz target over the real parsers (docs/RELIABILITY.md), and the driver:
        // libFuzzer's binary under CORPUS_FUZZ=1, else a replayer of saved inputs.
        .target(name: "FuzzTargets", dependencies: ["Ingest", "Quality", "ModelRuntime", "Serve"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "corpus-fuzz",
            dependencies: ["FuzzTargets"],
            swiftSettings: swiftSettings,
            // lld: gold stops with an internal error on this link (dwarf_reader.cc).
            linkerSettings: fuzzing ? [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])] : []
        ),
        // Throughput and peak memory of LoRA training steps (docs/TRAINING_MATH.md).
        .target(name: "TestSupport", dependencies: ["CorpusDB"], path: "Tests/TestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "CorpusSupportTests", dependencies: ["CorpusSupport", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "CorpusDBTests", dependencies: ["CorpusDB", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "IngestTests", dependencies: ["Ingest", "CorpusDB", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "TrainerTests", dependencies: ["CorpusSupport", "ModelRuntime", "Trainer", "TestSupport"], exclude: ["Fixtures"], swiftSettings: swiftSettings),
        .testTarget(name: "QualityTests", dependencies: ["Quality", "Ingest", "CorpusDB", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "CorpusCLITests", dependencies: ["CorpusDB", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "ServeTests", dependencies: ["Serve", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets", "Ingest", "ModelRuntime", "Quality", "TestSupport"], swiftSettings: swiftSettings),
    ]
)
