/// Dequantization of ggml block formats to fp32, written from the block layouts in ggml's
/// `ggml-common.h` / `ggml-quants.c` (https://github.com/ggml-org/ggml). Each block stores a
/// scale (fp16) and small integers; K-quants group 256 values in super-blocks with 6-bit
/// sub-block scales.
enum GGMLDequantize {
    /// Dequantizes `count` elements of `type` from `source` into `out`. The caller checked that
    /// `source` holds `count / elementsPerBlock` whole blocks.
    static func run(_ type: GGMLType, source: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f16:
            for i in 0..<count { out[i] = half(source, 2 * i) }
        case .bf16:
            for i in 0..<count {
                out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
            }
        case .q8_0: q8_0(source, count / 32, out)
        case .q4_0: q4_0(source, count / 32, out)
        case .q4_1: q4_1(source, count / 32, out)
        case .q4_K: q4_K(source, count / 256, out)
        case .q6_K: q6_K(source, count / 256, out)
        default: break // unreachable: the caller checked `blockLayout`
        }
    }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }

    /// block_q8_0 (34 bytes): d (fp16), qs[32] (int8); x = d·q.
    static func q8_0(_ p: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let block = p + b * 34
            let d = half(block, 0)
            let qs = (block + 2).assumingMemoryBound(to: Int8.self)
            for j in 0..<32 { y[b * 32 + j] = d * Float(qs[j]) }
        }
    }

    /// block_q4_0 (18 bytes): d (fp16), qs[16]; x[j] = d·((qs[j] & 15) − 8), x[j+16] = d·((qs[j] >> 4) − 8).
    static func q4_0(_ p: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let block = p + b * 18
            let d = half(block, 0)
            let qs = (block + 2).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                y[b * 32 + j] = d * Float(Int(qs[j] & 0x0F) - 8)
                y[b * 32 + j + 16] = d * Float(Int(qs[j] >> 4) - 8)
            }
        }
    }

    /// block_q4_1 (20 bytes): d, m (fp16), qs[16]; x[j] = d·(qs[j] & 15) + m, x[j+16] = d·(qs[j] >> 4) + m.
    static func q4_1(_ p: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let block = p + b * 20
            let d = half(block, 0), m = half(block, 2)
            let qs = (block + 4).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                y[b * 32 + j] = d * Float(qs[j] & 0x0F) + m
                y[b * 32 + j + 16] = d * Float(qs[j] >> 4) + m
            }
        }
    }

    /// The 6-bit scale and min of sub-block `j` (0..<8) from the 12 packed bytes of a Q4_K block.
    @inline(__always)
    static func scaleMinK4(_ j: Int, _ q: UnsafePointer<UInt8>) -> (scale: UInt8, min: UInt8) {
        if j < 4 { return (q[j] & 63, q[j + 4] & 63) }
        return ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }

    /// block_q4_K (144 bytes): d, dmin (fp16), scales[12] (packed 6-bit), qs[128]; 8 sub-blocks of 32:
    /// x = d·scale·q − dmin·min.
    static func q4_K(_ p: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let block = p + b * 144
            let d = half(block, 0), dmin = half(block, 2)
            let scales = (block + 4).assumingMemoryBound(to: UInt8.self)
            var q = UnsafePointer((block + 16).assumingMemoryBound(to: UInt8.self))
            var out = y + b * 256
            for pair in 0..<4 {
                let (sc1, m1) = scaleMinK4(2 * pair, scales)
                let (sc2, m2) = scaleMinK4(2 * pair + 1, scales)
                let d1 = d * Float(sc1), min1 = dmin * Float(m1)
                let d2 = d * Float(sc2), min2 = dmin * Float(m2)
                for l in 0..<32 { out[l] = d1 * Float(q[l] & 0x0F) - min1 }
                for l in 0..<32 { out[32 + l] = d2 * Float(q[l] >> 4) - min2 }
                q += 32
                out += 64
            }
        }
    }

    /// block_q6_K (210 bytes): ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d (fp16);
    /// x = d·scale·(q − 32) with 6-bit q.
    static func q6_K(_ p: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        for b in 0..<blocks {
            let block = p + b * 210
            var ql = UnsafePointer(block.assumingMemoryBound(to: UInt8.self))
            var qh = UnsafePointer((block + 128).assumingMemoryBound(to: UInt8.self))
            var sc = UnsafePointer((block + 192).assumingMemoryBound(to: Int8.self))
            let d = half(block, 208)
            var out = y + b * 256
            for _ in 0..<2 {
                for l in 0..<32 {
                    let s = l / 16
                    let q1 = Int((ql[l] & 0x0F) | ((qh[l] >> 0) & 3) << 4) - 32
                    let q2 = Int((ql[l + 32] & 0x0F) | ((qh[l] >> 2) & 3) << 4) - 32
                    let q3 = Int((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32
                    let q4 = Int((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32
                    out[l] = d * Float(sc[s]) * Float(q1)
                    out[l + 32] = d * Float(sc[s + 2]) * Float(q2)
                    out[l + 64] = d * Float(sc[s + 4]) * Float(q3)
                    out[l + 96] = d * Float(sc[s + 6]) * Float(q4)
                }
                out += 128
                ql += 64
                qh += 32
                sc += 8
            }
        }
    }
}
