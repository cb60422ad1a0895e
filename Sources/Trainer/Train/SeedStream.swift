import ModelRuntime
/// A small deterministic random number generator (SplitMix64, Steele, Lea & Flood 2014,
/// https://doi.org/10.1145/2714064.2660195) with named sub-streams, so every consumer (the
/// initialization of one LoRA matrix, the dropout mask of one projection in one layer of one
/// sequence) draws from its own stream whatever order the others run in.
public struct SeedStream: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// The stream whose state starts at `seed` (use `derive` for sub-streams).
    public init(seed: UInt64) {
        state = seed
    }

    /// A stream for the sub-task `path` of `seed`: the same seed and path always give the same
    /// stream; different paths give unrelated ones.
    public static func derive(_ seed: UInt64, _ path: UInt64...) -> SeedStream {
        var h = mix(seed ^ 0x6A09_E667_F3BC_C909)
        for p in path { h = mix(h ^ mix(p &+ 0x9E37_79B9_7F4A_7C15)) }
        return SeedStream(seed: h)
    }

    /// The SplitMix64 finalizer.
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 { SplitMix64.mix(value) }

    /// The next 64 random bits.
    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// A uniform value in [0, 1) with 24 random bits (every value exact in Float).
    @inline(__always)
    public mutating func nextUnitFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }
}
